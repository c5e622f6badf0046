//! `contracts/exceptions.toml`: the one place where a known difference between an official
//! description and the real service is recorded, with its reason.

use serde::Deserialize;

use crate::paths::glob_matches;
use crate::Api;

/// What an exception lets through. Each kind is narrow on purpose: it widens exactly one check.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// The method and path have no operation in the description; the exchange is not checked.
    UndescribedOperation,
    /// The response status is not documented for the operation. The body is validated against
    /// `response_schema` when given, and must be absent otherwise.
    UndocumentedStatus,
    /// The `api-version` query value differs from the description's version.
    ApiVersion,
    /// Query parameters the description does not declare for the operation.
    UndocumentedQueryParameter,
    /// Response properties the description does not declare, by location in the body.
    UndocumentedProperty,
    /// In response bodies, properties the description does not list as `required` may be `null`.
    NullableOptionalProperties,
}

/// One recorded difference.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Exception {
    /// Short unique name, used in messages.
    pub id: String,
    /// `github-rest`, `compute`, `keyvault-secrets`, `imds` or `actions-scaleset`.
    pub api: String,
    /// Upper-case HTTP method, or `*` for any.
    pub method: String,
    /// Path pattern: `*` or `{name}` matches one segment, `**` any number of segments.
    pub path: String,
    pub kind: Kind,
    /// What differs between the description and reality.
    pub differs: String,
    /// Why the difference is acceptable.
    pub reason: String,
    /// `undocumented-status`: the statuses allowed.
    #[serde(default)]
    pub statuses: Vec<u16>,
    /// `undocumented-status`: `file#/pointer` (file relative to `contracts/`) of the body schema.
    #[serde(default)]
    pub response_schema: Option<String>,
    /// `api-version`: the values allowed besides the description's own version.
    #[serde(default)]
    pub api_versions: Vec<String>,
    /// `undocumented-query-parameter`: the parameter names allowed.
    #[serde(default)]
    pub query_parameters: Vec<String>,
    /// `undocumented-property`: locations in the response body (JSON pointer; `*` matches one
    /// segment, e.g. `/value/*/etag`).
    #[serde(default)]
    pub properties: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(rename = "exception", default)]
    exceptions: Vec<Exception>,
}

impl Exception {
    /// Whether this exception is about `api` and covers `method path`.
    pub(crate) fn covers(&self, api: Api, method: &str, path: &str) -> bool {
        self.api == api.key()
            && (self.method == "*" || self.method.eq_ignore_ascii_case(method))
            && glob_matches(&self.path, path, api.case_insensitive_paths())
    }

    /// Every problem with the entry itself (missing reason, fields that do not fit its kind).
    fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        let mut need = |ok: bool, what: &str| {
            if !ok {
                out.push(format!("exception `{}`: {what}", self.id));
            }
        };
        need(!self.id.trim().is_empty(), "empty id");
        need(
            Api::from_key(&self.api).is_some(),
            "unknown api (github-rest, compute, keyvault-secrets, imds, actions-scaleset)",
        );
        need(
            self.method == "*" || self.method.chars().all(|c| c.is_ascii_uppercase()),
            "method must be `*` or upper case",
        );
        need(self.path.starts_with('/'), "path must start with `/`");
        need(self.differs.trim().len() >= 10, "`differs` must say what differs");
        need(self.reason.trim().len() >= 20, "`reason` must say why the difference is acceptable");
        match self.kind {
            Kind::UndescribedOperation | Kind::NullableOptionalProperties => {}
            Kind::UndocumentedStatus => need(!self.statuses.is_empty(), "`statuses` is empty"),
            Kind::ApiVersion => need(!self.api_versions.is_empty(), "`api_versions` is empty"),
            Kind::UndocumentedQueryParameter => need(!self.query_parameters.is_empty(), "`query_parameters` is empty"),
            Kind::UndocumentedProperty => need(!self.properties.is_empty(), "`properties` is empty"),
        }
        need(
            self.response_schema.is_none() || self.kind == Kind::UndocumentedStatus,
            "`response_schema` only fits kind undocumented-status",
        );
        out
    }
}

/// Parses the exceptions file; `Err` lists every problem found in it.
pub fn parse(text: &str) -> Result<Vec<Exception>, Vec<String>> {
    let file: File = toml::from_str(text).map_err(|e| vec![format!("exceptions.toml does not parse: {e}")])?;
    let mut problems: Vec<String> = file.exceptions.iter().flat_map(Exception::problems).collect();
    let mut ids: Vec<&str> = file.exceptions.iter().map(|e| e.id.as_str()).collect();
    ids.sort_unstable();
    for pair in ids.windows(2) {
        if pair[0] == pair[1] {
            problems.push(format!("exception id `{}` is used twice", pair[0]));
        }
    }
    if problems.is_empty() {
        Ok(file.exceptions)
    } else {
        Err(problems)
    }
}
