//! The learned state's blob, through the official `azure_storage_blob` SDK: read it
//! with its ETag, write it only if nobody else wrote since (`If-Match`, or
//! `If-None-Match: *` when it did not exist). Authenticated as the busy-record queue
//! is: the scaler's managed identity (Storage Blob Data Contributor on the container),
//! or a SAS carried in the URL against Azurite.

use std::sync::Arc;

use azure_core::{
    credentials::TokenCredential,
    error::ErrorKind,
    http::{Etag, RequestContent, StatusCode, Url},
};
use azure_storage_blob::{
    models::{BlobClientDownloadOptions, BlobClientUploadOptions},
    BlobClient, BlobClientOptions, BlobContainerClient, BlobContainerClientOptions,
};

use super::LearnedError;
use crate::queue::{client_options, redact_query};

/// The blob's content and the ETag it was read with.
pub struct Stored {
    pub bytes: Vec<u8>,
    pub etag: Etag,
}

/// What a write may overwrite.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Expect {
    /// No blob: the first write.
    Absent,
    /// The blob as read (or last written) with this ETag.
    Unchanged(Etag),
}

/// Why a write did not happen.
#[derive(Debug)]
pub enum WriteRefused {
    /// Someone else wrote the blob since it was read (412), or created it first (409).
    Conflict,
    Failed(LearnedError),
}

pub struct StateBlob {
    client: BlobClient,
    url: Url,
    credential: Option<Arc<dyn TokenCredential>>,
    /// The URL without its query, for messages.
    shown: String,
}

impl StateBlob {
    /// `credential`: an Entra token credential (managed identity in production); `None`
    /// when the URL carries a SAS, as against Azurite in tests.
    pub fn new(state_url: &str, credential: Option<Arc<dyn TokenCredential>>) -> Result<Self, LearnedError> {
        let shown = redact_query(state_url);
        let url = Url::parse(state_url).map_err(|source| LearnedError::InvalidUrl { url: shown.clone(), source })?;
        let client = BlobClient::new(url.clone(), credential.clone(), Some(blob_options()))
            .map_err(|e| LearnedError::ClientFailed { url: shown.clone(), source: e.into() })?;
        Ok(Self { client, url, credential, shown })
    }

    /// The blob's URL without its query (no SAS), for messages and logs.
    pub fn shown_url(&self) -> &str {
        &self.shown
    }

    /// The blob and its ETag, or `None` when it does not exist yet.
    pub async fn read(&self) -> Result<Option<Stored>, LearnedError> {
        let failed = |e: azure_core::Error| LearnedError::ReadFailed { url: self.shown.clone(), source: e.into() };
        let downloaded = match self.client.download(Some(BlobClientDownloadOptions::default())).await {
            Ok(downloaded) => downloaded,
            Err(e) if blob_missing(&e) => return Ok(None),
            Err(e) => return Err(failed(e)),
        };
        let etag = downloaded.properties.etag.ok_or_else(|| LearnedError::NoEtag { url: self.shown.clone() })?;
        let bytes = downloaded.body.collect().await.map_err(failed)?;
        Ok(Some(Stored { bytes: bytes.to_vec(), etag }))
    }

    /// Writes `bytes` if the blob is as `expect` says; returns the new ETag.
    pub async fn write(&self, bytes: Vec<u8>, expect: &Expect) -> Result<Etag, WriteRefused> {
        let options = BlobClientUploadOptions {
            blob_content_type: Some("application/json".to_owned()),
            if_match: match expect {
                Expect::Unchanged(etag) => Some(etag.clone()),
                Expect::Absent => None,
            },
            if_none_match: match expect {
                Expect::Absent => Some(Etag::from("*")),
                Expect::Unchanged(_) => None,
            },
            ..BlobClientUploadOptions::default()
        };
        match self.client.upload(RequestContent::from(bytes), Some(options)).await {
            Ok(written) => written.etag.ok_or(WriteRefused::Failed(LearnedError::NoEtag { url: self.shown.clone() })),
            Err(e) if matches!(e.http_status(), Some(StatusCode::PreconditionFailed | StatusCode::Conflict)) => {
                Err(WriteRefused::Conflict)
            }
            Err(e) => {
                Err(WriteRefused::Failed(LearnedError::WriteFailed { url: self.shown.clone(), source: e.into() }))
            }
        }
    }

    /// Create the container if it does not exist. Production's comes from Terraform;
    /// this is for local runs and tests.
    pub async fn ensure_container(&self) -> Result<(), LearnedError> {
        let mut url = self.url.clone();
        url.path_segments_mut().map_err(|_| LearnedError::NoContainer { url: self.shown.clone() })?.pop();
        let failed = |e: azure_core::Error| LearnedError::ClientFailed { url: self.shown.clone(), source: e.into() };
        let options =
            BlobContainerClientOptions { client_options: client_options(), ..BlobContainerClientOptions::default() };
        let container = BlobContainerClient::new(url, self.credential.clone(), Some(options)).map_err(failed)?;
        match container.create(None).await {
            Ok(_) => Ok(()),
            Err(e) if e.http_status() == Some(StatusCode::Conflict) => Ok(()),
            Err(e) => Err(failed(e)),
        }
    }
}

/// The SDK's retries for the learned state, bounded as the queue's are (3 within
/// 10 s): a failed save is retried by the next period anyway.
fn blob_options() -> BlobClientOptions {
    BlobClientOptions { client_options: client_options(), ..BlobClientOptions::default() }
}

/// 404 for the blob itself. A missing *container* is an error: writing would fail too.
fn blob_missing(error: &azure_core::Error) -> bool {
    match error.kind() {
        ErrorKind::HttpResponse { status: StatusCode::NotFound, error_code, .. } => {
            error_code.as_deref() != Some("ContainerNotFound")
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_invalid_url_is_reported_without_its_query() {
        let err = StateBlob::new("not a url?sig=secret", None).err().expect("refused");
        let text = crate::report::chain(&err);
        assert!(text.starts_with("the learned-state URL not a url is not a URL"), "{text}");
        assert!(!text.contains("secret"), "{text}");
    }

    #[test]
    fn the_shown_url_has_no_sas() {
        let blob =
            StateBlob::new("http://127.0.0.1:1/devstoreaccount1/operator-state/learned.json?sv=1&sig=c2VjcmV0", None)
                .expect("a client");
        assert_eq!(blob.shown_url(), "http://127.0.0.1:1/devstoreaccount1/operator-state/learned.json");
    }
}
