//! The busy record in an Azure Storage Queue, through the official
//! `azure_storage_queue` SDK. One message per busy runner; format and recovery in
//! `docs/busy-record.md`.

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use async_trait::async_trait;
use azure_core::{
    credentials::TokenCredential,
    http::{StatusCode, Url},
};
use azure_storage_queue::{
    models::{
        QueueClientGetPropertiesResultHeaders, QueueClientReceiveMessagesOptions, QueueClientSendMessageOptions,
        QueueMessage,
    },
    QueueClient,
};
use tracing::warn;

use crate::ports::{BusyMarker, BusyRecord, BusyRecordError, MarkerHandle, StoredMarker};

/// How long messages stay hidden while recovery reads them. They are made visible
/// again right after; if the operator dies in between, the next start waits this long.
const RECOVERY_LEASE_SECS: i32 = 15;
/// Most messages one receive returns (the service's limit).
const BATCH: i32 = 32;

pub struct QueueBusyRecord {
    client: QueueClient,
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl QueueBusyRecord {
    /// `credential`: an Entra token credential (managed identity in production).
    /// `None` when the URL carries a SAS, as against Azurite in tests.
    pub fn new(queue_url: &str, credential: Option<Arc<dyn TokenCredential>>) -> Result<Self, BoxError> {
        let url = Url::parse(queue_url)?;
        Ok(Self { client: QueueClient::new(url, credential, None)? })
    }

    /// Create the queue if it does not exist. Production queues come from Terraform;
    /// this is for local runs and tests.
    pub async fn ensure_queue(&self) -> Result<(), BoxError> {
        if !self.client.exists().await? {
            self.client.create(None).await?;
        }
        Ok(())
    }

    /// Receive every visible message once, hiding each for the recovery lease.
    async fn receive_all(&self) -> Result<BTreeMap<String, (String, String)>, BoxError> {
        let mut out = BTreeMap::new();
        loop {
            let options = QueueClientReceiveMessagesOptions {
                number_of_messages: Some(BATCH),
                visibility_timeout: Some(RECOVERY_LEASE_SECS),
                ..Default::default()
            };
            let batch = self.client.receive_messages(Some(options)).await?.into_model()?.items.unwrap_or_default();
            if batch.is_empty() {
                return Ok(out);
            }
            for m in batch {
                if let (Some(id), Some(receipt)) = (m.message_id, m.pop_receipt) {
                    out.insert(id, (receipt, m.message_text.unwrap_or_default()));
                }
            }
        }
    }

    /// Make a received message visible again; returns its new pop receipt.
    async fn release(&self, message_id: &str, pop_receipt: &str) -> Result<String, BoxError> {
        let response = self.client.update_message(message_id, pop_receipt, 0, None).await?;
        let receipt = response
            .headers()
            .get_optional_string(&azure_core::http::headers::HeaderName::from_static("x-ms-popreceipt"))
            .ok_or("update message returned no pop receipt")?;
        Ok(receipt)
    }

    async fn approximate_count(&self) -> Result<i64, BoxError> {
        Ok(self.client.get_properties(None).await?.approximate_messages_count()?.unwrap_or(0))
    }
}

#[async_trait]
impl BusyRecord for QueueBusyRecord {
    async fn put(&self, marker: &BusyMarker) -> Result<MarkerHandle, BusyRecordError> {
        let fail = |source: BoxError| BusyRecordError::WriteFailed { instance: marker.instance.clone(), source };
        let text = serde_json::to_string(marker).map_err(|e| fail(e.into()))?;
        let message = QueueMessage { message_text: Some(text) };
        // Visible at once, and kept until removed: a marker must not expire while a job runs.
        let options = QueueClientSendMessageOptions {
            visibility_timeout: Some(0),
            message_time_to_live: Some(-1),
            ..Default::default()
        };
        let sent = self
            .client
            .send_message(message.try_into().map_err(|e: azure_core::Error| fail(e.into()))?, Some(options))
            .await
            .map_err(|e| fail(e.into()))?
            .into_model()
            .map_err(|e| fail(e.into()))?;
        let first = sent
            .items
            .and_then(|items| items.into_iter().next())
            .ok_or_else(|| fail("no message in the reply".into()))?;
        match (first.message_id, first.pop_receipt) {
            (Some(message_id), Some(pop_receipt)) => Ok(MarkerHandle { message_id, pop_receipt }),
            _ => Err(fail("the reply lacks message id or pop receipt".into())),
        }
    }

    async fn remove(&self, handle: &MarkerHandle) -> Result<(), BusyRecordError> {
        match self.client.delete_message(&handle.message_id, &handle.pop_receipt, None).await {
            Ok(_) => Ok(()),
            // Already removed (a repeated hook, or removed before a restart).
            Err(e) if e.http_status() == Some(StatusCode::NotFound) => Ok(()),
            Err(e) => Err(BusyRecordError::RemoveFailed { message_id: handle.message_id.clone(), source: e.into() }),
        }
    }

    async fn load(&self) -> Result<Vec<StoredMarker>, BusyRecordError> {
        let fail = |e: BoxError| BusyRecordError::LoadFailed(e);
        loop {
            let received = self.receive_all().await.map_err(fail)?;
            let mut out = Vec::with_capacity(received.len());
            for (message_id, (receipt, text)) in received.iter() {
                let pop_receipt = self.release(message_id, receipt).await.map_err(fail)?;
                match serde_json::from_str::<BusyMarker>(text) {
                    Ok(marker) => out.push(StoredMarker {
                        handle: MarkerHandle { message_id: message_id.clone(), pop_receipt },
                        marker,
                    }),
                    Err(err) => warn!(message_id, error = %err, "queue message is not a busy marker; left in place"),
                }
            }
            // Messages hidden by an earlier recovery that died before releasing them
            // are invisible to receive but counted here: wait for them rather than
            // forget a busy runner.
            let total = self.approximate_count().await.map_err(fail)?;
            if total <= received.len() as i64 {
                return Ok(out);
            }
            warn!(
                visible = received.len(),
                total, "some busy markers are hidden by an earlier recovery; waiting for them"
            );
            tokio::time::sleep(Duration::from_secs(RECOVERY_LEASE_SECS as u64)).await;
        }
    }

    async fn ping(&self) -> Result<(), BusyRecordError> {
        self.client.get_properties(None).await.map(|_| ()).map_err(|e| BusyRecordError::LoadFailed(e.into()))
    }
}
