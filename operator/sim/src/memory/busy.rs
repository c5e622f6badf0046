use std::{collections::BTreeMap, sync::Mutex};

use async_trait::async_trait;

use operator_core::ports::{BusyMarker, BusyRecord, BusyRecordError, MarkerHandle, StoredMarker};

/// Busy markers in a map, with queue-like handles: every `load` hands out new pop
/// receipts and invalidates the old ones, as a queue receive does.
#[derive(Default)]
pub struct InMemoryBusyRecord {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    next: u64,
    messages: BTreeMap<String, (String, BusyMarker)>,
}

impl InMemoryBusyRecord {
    /// The stored markers, oldest first.
    pub fn markers(&self) -> Vec<BusyMarker> {
        self.inner.lock().expect("busy record poisoned").messages.values().map(|(_, m)| m.clone()).collect()
    }
}

impl Inner {
    fn receipt(&mut self) -> String {
        self.next += 1;
        format!("receipt-{}", self.next)
    }
}

#[async_trait]
impl BusyRecord for InMemoryBusyRecord {
    async fn put(&self, marker: &BusyMarker) -> Result<MarkerHandle, BusyRecordError> {
        let mut inner = self.inner.lock().expect("busy record poisoned");
        inner.next += 1;
        let message_id = format!("msg-{:08}", inner.next);
        let pop_receipt = inner.receipt();
        inner.messages.insert(message_id.clone(), (pop_receipt.clone(), marker.clone()));
        Ok(MarkerHandle { message_id, pop_receipt })
    }

    async fn remove(&self, handle: &MarkerHandle) -> Result<(), BusyRecordError> {
        let mut inner = self.inner.lock().expect("busy record poisoned");
        match inner.messages.get(&handle.message_id) {
            None => Ok(()),
            Some((receipt, _)) if *receipt == handle.pop_receipt => {
                inner.messages.remove(&handle.message_id);
                Ok(())
            }
            Some(_) => Err(BusyRecordError::RemoveFailed {
                message_id: handle.message_id.clone(),
                source: "pop receipt no longer valid".into(),
            }),
        }
    }

    async fn load(&self) -> Result<Vec<StoredMarker>, BusyRecordError> {
        let mut inner = self.inner.lock().expect("busy record poisoned");
        let ids: Vec<String> = inner.messages.keys().cloned().collect();
        let mut out = Vec::with_capacity(ids.len());
        for message_id in ids {
            let pop_receipt = inner.receipt();
            let entry = inner.messages.get_mut(&message_id).expect("listed above");
            entry.0 = pop_receipt.clone();
            out.push(StoredMarker { handle: MarkerHandle { message_id, pop_receipt }, marker: entry.1.clone() });
        }
        Ok(out)
    }
}
