//! Validates HTTP exchanges against the official API descriptions copied into `contracts/`.

use serde::{Deserialize, Serialize};

/// One request and its response, as a fake server recorded it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Exchange {
    /// Upper-case HTTP method, e.g. `GET`.
    pub method: String,
    /// Path and query as sent, e.g. `/repos/o/r/actions/runners?per_page=100`.
    pub path: String,
    /// The JSON request body, if any.
    pub request_body: Option<serde_json::Value>,
    pub status: u16,
    /// The JSON response body, if any.
    pub response_body: Option<serde_json::Value>,
}
