use std::{collections::HashMap, sync::Mutex};

use async_trait::async_trait;

use operator_core::ports::{SecretError, SecretStore, SecretValue};

/// Secrets held in a map.
#[derive(Default)]
pub struct InMemorySecretStore {
    secrets: Mutex<HashMap<String, SecretValue>>,
}

impl InMemorySecretStore {
    pub fn with(name: &str, value: &str) -> Self {
        let store = Self::default();
        store.set(name, value);
        store
    }

    pub fn set(&self, name: &str, value: &str) {
        self.secrets.lock().expect("secret map poisoned").insert(name.to_owned(), SecretValue::new(value));
    }
}

#[async_trait]
impl SecretStore for InMemorySecretStore {
    async fn get(&self, name: &str) -> Result<SecretValue, SecretError> {
        self.secrets
            .lock()
            .expect("secret map poisoned")
            .get(name)
            .cloned()
            .ok_or_else(|| SecretError::NotFound { name: name.to_owned() })
    }
}
