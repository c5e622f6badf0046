//! The busy record in an Azure Storage Queue, through the official
//! `azure_storage_queue` SDK. One message per busy runner; format and recovery in
//! `docs/busy-record.md`.

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use async_trait::async_trait;
use azure_core::{
    credentials::TokenCredential,
    http::{ClientOptions, ExponentialRetryOptions, RetryOptions, StatusCode, Url},
};
use azure_storage_queue::{
    models::{
        QueueClientGetPropertiesResultHeaders, QueueClientReceiveMessagesOptions, QueueClientSendMessageOptions,
        QueueMessage,
    },
    QueueClient, QueueClientOptions,
};
use tracing::warn;

use crate::{
    ports::{BusyMarker, BusyRecord, BusyRecordError, MarkerHandle, StoredMarker},
    report::Chain,
};

/// How long messages stay hidden while recovery reads them. They are made visible
/// again right after; if the operator dies in between, the next start waits this long.
const RECOVERY_LEASE_SECS: i32 = 15;
/// Most messages one receive returns (the service's limit).
const BATCH: i32 = 32;

pub struct QueueBusyRecord {
    client: QueueClient,
}

type UrlParseError = <Url as std::str::FromStr>::Err;

/// Why a call to the queue failed, named for the call. No message carries a SAS: URLs
/// lose their query, and the SDK's text is rendered through [`SdkError`].
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("the queue URL {url} is not a URL")]
    InvalidUrl {
        /// Without its query.
        url: String,
        #[source]
        source: UrlParseError,
    },
    #[error("creating the queue client failed")]
    ClientFailed(#[source] SdkError),
    #[error("checking or creating the queue failed")]
    EnsureFailed(#[source] SdkError),
    #[error("encoding the busy marker failed")]
    EncodeFailed(#[source] serde_json::Error),
    #[error("sending the message failed")]
    SendFailed(#[source] SdkError),
    #[error("receiving messages failed")]
    ReceiveFailed(#[source] SdkError),
    #[error("making message {message_id} visible again failed")]
    ReleaseFailed {
        message_id: String,
        #[source]
        source: SdkError,
    },
    #[error("deleting the message failed")]
    DeleteFailed(#[source] SdkError),
    #[error("reading the queue's properties failed")]
    PropertiesFailed(#[source] SdkError),
    #[error("the service's reply lacks {0}")]
    IncompleteReply(&'static str),
}

/// An Azure SDK error, rendered with its whole chain and every SAS signature removed
/// (a transport error's text can carry the request URL). It ends the `source()` chain:
/// the causes below it are in its text, redacted.
pub struct SdkError(azure_core::Error);

impl SdkError {
    /// The HTTP status the service answered, if it answered.
    pub fn http_status(&self) -> Option<StatusCode> {
        self.0.http_status()
    }
}

impl From<azure_core::Error> for SdkError {
    fn from(error: azure_core::Error) -> Self {
        Self(error)
    }
}

impl std::fmt::Display for SdkError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // `chain` renders through the one redaction, `report::redact`.
        f.write_str(&crate::report::chain(&self.0))
    }
}

impl std::fmt::Debug for SdkError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SdkError({self})")
    }
}

impl std::error::Error for SdkError {}

/// The SDK's retries for busy-record calls: 3 retries within 10 s (its default is 8
/// within a minute, which with attempt timeouts made a hook wait about 82 s on an
/// unreachable queue). A hook is answered 503 sooner and the VM asks again; the
/// reconcile pass retries on its own schedule.
pub fn retry_options() -> RetryOptions {
    RetryOptions::exponential(ExponentialRetryOptions {
        initial_delay: azure_core::time::Duration::milliseconds(200),
        max_retries: 3,
        max_total_elapsed: azure_core::time::Duration::seconds(10),
        max_delay: azure_core::time::Duration::seconds(2),
    })
}

/// The storage SDK clients' pipeline options (the queue's and the learned-state blob's):
/// [`retry_options`], the rest default.
pub fn client_options() -> ClientOptions {
    ClientOptions { retry: retry_options(), ..ClientOptions::default() }
}

/// Does the queue URL authenticate itself with a SAS (local runs against Azurite)?
/// Otherwise an Entra token is needed, as shared keys are disabled in production.
pub fn carries_sas(queue_url: &str) -> bool {
    Url::parse(queue_url).is_ok_and(|url| url.query_pairs().any(|(k, _)| k == "sig"))
}

/// A URL without its query, so a SAS never reaches a log line.
pub fn redact_query(url: &str) -> String {
    url.split('?').next().unwrap_or_default().to_owned()
}

impl QueueBusyRecord {
    /// `credential`: an Entra token credential (managed identity in production).
    /// `None` when the URL carries a SAS ([`carries_sas`]), as against Azurite in tests.
    pub fn new(queue_url: &str, credential: Option<Arc<dyn TokenCredential>>) -> Result<Self, QueueError> {
        let url =
            Url::parse(queue_url).map_err(|source| QueueError::InvalidUrl { url: redact_query(queue_url), source })?;
        let options = QueueClientOptions { client_options: client_options(), ..QueueClientOptions::default() };
        let client =
            QueueClient::new(url, credential, Some(options)).map_err(|e| QueueError::ClientFailed(SdkError(e)))?;
        Ok(Self { client })
    }

    /// Create the queue if it does not exist. Production queues come from Terraform;
    /// this is for local runs and tests.
    pub async fn ensure_queue(&self) -> Result<(), QueueError> {
        let failed = |e| QueueError::EnsureFailed(SdkError(e));
        if !self.client.exists().await.map_err(failed)? {
            self.client.create(None).await.map_err(failed)?;
        }
        Ok(())
    }

    /// Receive every visible message once, hiding each for the recovery lease.
    async fn receive_all(&self) -> Result<BTreeMap<String, (String, String)>, QueueError> {
        let failed = |e| QueueError::ReceiveFailed(SdkError(e));
        let mut out = BTreeMap::new();
        loop {
            let options = QueueClientReceiveMessagesOptions {
                number_of_messages: Some(BATCH),
                visibility_timeout: Some(RECOVERY_LEASE_SECS),
                ..Default::default()
            };
            let batch = self
                .client
                .receive_messages(Some(options))
                .await
                .map_err(failed)?
                .into_model()
                .map_err(failed)?
                .items
                .unwrap_or_default();
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
    async fn release(&self, message_id: &str, pop_receipt: &str) -> Result<String, QueueError> {
        let response = self
            .client
            .update_message(message_id, pop_receipt, 0, None)
            .await
            .map_err(|e| QueueError::ReleaseFailed { message_id: message_id.to_owned(), source: SdkError(e) })?;
        response
            .headers()
            .get_optional_string(&azure_core::http::headers::HeaderName::from_static("x-ms-popreceipt"))
            .ok_or(QueueError::IncompleteReply("a pop receipt"))
    }

    async fn approximate_count(&self) -> Result<i64, QueueError> {
        let failed = |e| QueueError::PropertiesFailed(SdkError(e));
        Ok(self
            .client
            .get_properties(None)
            .await
            .map_err(failed)?
            .approximate_messages_count()
            .map_err(failed)?
            .unwrap_or(0))
    }

    async fn send(&self, marker: &BusyMarker) -> Result<MarkerHandle, QueueError> {
        let text = serde_json::to_string(marker).map_err(QueueError::EncodeFailed)?;
        let message = QueueMessage { message_text: Some(text) };
        // Visible at once, and kept until removed: a marker must not expire while a job runs.
        let options = QueueClientSendMessageOptions {
            visibility_timeout: Some(0),
            message_time_to_live: Some(-1),
            ..Default::default()
        };
        let failed = |e| QueueError::SendFailed(SdkError(e));
        let sent = self
            .client
            .send_message(message.try_into().map_err(failed)?, Some(options))
            .await
            .map_err(failed)?
            .into_model()
            .map_err(failed)?;
        let first =
            sent.items.and_then(|items| items.into_iter().next()).ok_or(QueueError::IncompleteReply("a message"))?;
        match (first.message_id, first.pop_receipt) {
            (Some(message_id), Some(pop_receipt)) => Ok(MarkerHandle { message_id, pop_receipt }),
            _ => Err(QueueError::IncompleteReply("the message id or pop receipt")),
        }
    }
}

#[async_trait]
impl BusyRecord for QueueBusyRecord {
    async fn put(&self, marker: &BusyMarker) -> Result<MarkerHandle, BusyRecordError> {
        self.send(marker)
            .await
            .map_err(|e| BusyRecordError::WriteFailed { instance: marker.instance.clone(), source: Box::new(e) })
    }

    async fn remove(&self, handle: &MarkerHandle) -> Result<(), BusyRecordError> {
        match self.client.delete_message(&handle.message_id, &handle.pop_receipt, None).await {
            Ok(_) => Ok(()),
            // Already removed (a repeated hook, or removed before a restart).
            Err(e) if e.http_status() == Some(StatusCode::NotFound) => Ok(()),
            Err(e) => Err(BusyRecordError::RemoveFailed {
                message_id: handle.message_id.clone(),
                source: Box::new(QueueError::DeleteFailed(SdkError(e))),
            }),
        }
    }

    async fn load(&self) -> Result<Vec<StoredMarker>, BusyRecordError> {
        let fail = |e: QueueError| BusyRecordError::LoadFailed(Box::new(e));
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
                    Err(err) => {
                        warn!(message_id, error = %Chain(&err), "queue message is not a busy marker; left in place")
                    }
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sas_is_recognised_by_its_signature_parameter() {
        assert!(carries_sas("http://127.0.0.1:10001/devstoreaccount1/busy?sv=2023&sig=abc%3D"));
        assert!(!carries_sas("https://stbusy.queue.core.windows.net/busy-runners"));
        assert!(!carries_sas("https://stbusy.queue.core.windows.net/busy-runners?design=1"));
    }

    #[test]
    fn queue_urls_lose_their_sas_in_messages() {
        assert_eq!(redact_query("http://127.0.0.1:1/acct/q?sv=1&sig=secret"), "http://127.0.0.1:1/acct/q");
        let text = "error sending request for url (http://127.0.0.1:1/acct/q?sv=1&sig=c2VjcmV0&se=2) sig=x";
        assert_eq!(
            crate::report::redact(text),
            "error sending request for url (http://127.0.0.1:1/acct/q?sv=1&sig=REDACTED&se=2) sig=REDACTED"
        );
    }

    #[test]
    fn an_sdk_error_quoting_the_request_url_loses_the_signature_through_the_whole_chain() {
        let transport = std::io::Error::other("connection refused for http://127.0.0.1:1/acct/q?sv=1&sig=c2VjcmV0");
        let sdk = azure_core::Error::with_error(
            azure_core::error::ErrorKind::Io,
            transport,
            "error sending request for url (http://127.0.0.1:1/acct/q?sv=1&sig=c2VjcmV0)",
        );
        let err = QueueError::SendFailed(SdkError(sdk));
        let text = crate::report::chain(&err);
        assert!(text.starts_with("sending the message failed: error sending request"), "{text}");
        assert!(!text.contains("c2VjcmV0"), "{text}");
        assert!(!format!("{err:?}").contains("c2VjcmV0"), "{err:?}");
    }

    #[test]
    fn an_invalid_url_is_reported_without_its_query() {
        let err = QueueBusyRecord::new("not a url?sig=secret", None).err().expect("refused");
        let text = crate::report::chain(&err);
        assert!(!text.contains("secret"), "{text}");
    }
}
