//! Validates HTTP exchanges against the official API descriptions copied into `contracts/`, and
//! against the runner scale set description written there (GitHub publishes none).
//!
//! ```no_run
//! use contract::{Api, Contract, Exchange};
//! let contract = Contract::load(Api::GithubRest);
//! let exchange = Exchange {
//!     method: "DELETE".into(),
//!     path: "/repos/o/r/actions/runners/42".into(),
//!     request_body: None,
//!     status: 204,
//!     response_body: None,
//! };
//! assert_eq!(contract.check_all(&[exchange]), Vec::<String>::new());
//! ```
//!
//! See `contracts/README.md` for what is strict and what is lenient.

mod examples;
pub mod exceptions;
mod paths;
mod schema;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use jsonschema::error::ValidationErrorKind;
use jsonschema::ValidationError;
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use examples::Example;
use exceptions::{Exception, Kind};
use paths::{match_template, pointer_matches, request_segments, segments, split, template, Segment};
use schema::{escape, file_pointer, Bundle, Converter};

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

/// The APIs whose descriptions are in `contracts/`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Api {
    /// GitHub REST (runners, tokens, JIT config, runner groups, runs and jobs, installations).
    GithubRest,
    /// Azure Resource Manager, Microsoft.Compute virtual machine scale sets.
    Compute,
    /// Azure Key Vault secrets data plane.
    KeyVaultSecrets,
    /// Azure Instance Metadata Service (metadata, managed-identity token).
    Imds,
    /// GitHub's runner scale set API (the Actions service, and R3 `runner-registration`), from a
    /// description written here: GitHub publishes none (`contracts/actions-scaleset/README.md`).
    ActionsScaleset,
}

/// Where one API's descriptions live, relative to `contracts/`.
struct Source {
    /// Description files; the first is the primary one.
    descriptions: &'static [&'static str],
    /// Folders of examples for another api-version, mapped by their `operationId`.
    foreign_examples: &'static [&'static str],
    /// Folders of recorded exchanges, one JSON file each: `{"source": {...}, "exchange": Exchange}`
    /// (for a description written here, which has no embedded examples).
    recorded_examples: &'static [&'static str],
    /// Operations added to the primary description from the exact file it was cut from (same
    /// api-version), for calls made after the subset was cut; named by `operationId`.
    supplements: &'static [Supplement],
}

/// Operations taken, unchanged, from an exact upstream file.
struct Supplement {
    file: &'static str,
    operations: &'static [&'static str],
}

impl Api {
    pub const ALL: [Api; 5] = [Api::GithubRest, Api::Compute, Api::KeyVaultSecrets, Api::Imds, Api::ActionsScaleset];

    /// The name used in `contracts/exceptions.toml`.
    pub fn key(self) -> &'static str {
        match self {
            Api::GithubRest => "github-rest",
            Api::Compute => "compute",
            Api::KeyVaultSecrets => "keyvault-secrets",
            Api::Imds => "imds",
            Api::ActionsScaleset => "actions-scaleset",
        }
    }

    pub fn from_key(key: &str) -> Option<Api> {
        Api::ALL.into_iter().find(|a| a.key() == key)
    }

    /// Azure compares path literals case-insensitively; GitHub does not.
    fn case_insensitive_paths(self) -> bool {
        !matches!(self, Api::GithubRest | Api::ActionsScaleset)
    }

    /// The path as the description knows it. GitHub Enterprise Server serves REST under
    /// `/api/v3`. The Actions service lives under a base URL R3 hands out (`/tenant/<n>/` at the
    /// fake, `/rest/` or `/<tenant id>/` at GitHub) and the message queue under an opaque URL:
    /// their paths are described from their first `/_apis/` on, without a trailing `/`.
    fn described_path(self, path: &str) -> String {
        let rest = path.strip_prefix("/api/v3").filter(|p| p.starts_with('/'));
        match self {
            Api::GithubRest => rest.map_or(path.to_string(), str::to_string),
            Api::ActionsScaleset => match path.find("/_apis/") {
                Some(at) => path[at..].trim_end_matches('/').to_string(),
                None => rest.map_or(path.to_string(), str::to_string),
            },
            _ => path.to_string(),
        }
    }

    fn source(self) -> Source {
        match self {
            Api::GithubRest => Source {
                descriptions: &["github-rest/github-rest-runners-subset.json"],
                foreign_examples: &[],
                recorded_examples: &[],
                supplements: &[],
            },
            Api::Compute => Source {
                descriptions: &["azure/compute/exact-2021-07-snapshot-2021-03-01/compute.vmss-subset.json"],
                foreign_examples: &["azure/compute/examples-2025-04-01/virtualMachineScaleSetExamples"],
                recorded_examples: &[],
                // The subset was cut before the operator deallocated and started instances.
                supplements: &[Supplement {
                    file: "azure/compute/exact-2021-07-snapshot-2021-03-01/compute.json",
                    operations: &["VirtualMachineScaleSets_Deallocate", "VirtualMachineScaleSets_Start"],
                }],
            },
            Api::KeyVaultSecrets => Source {
                descriptions: &[
                    "azure/keyvault-secrets/secrets.2025-07-01.json",
                    "azure/keyvault-secrets/exact-2021-07-snapshot-7.2/secrets.json",
                ],
                foreign_examples: &[],
                recorded_examples: &[],
                supplements: &[],
            },
            Api::Imds => Source {
                descriptions: &[
                    "azure/imds/imds.2023-07-01.json",
                    "azure/imds/exact-2021-07-snapshot-2021-02-01/imds.json",
                ],
                foreign_examples: &[],
                recorded_examples: &[],
                supplements: &[],
            },
            Api::ActionsScaleset => Source {
                descriptions: &["actions-scaleset/actions-scaleset.openapi.json"],
                foreign_examples: &[],
                recorded_examples: &["actions-scaleset/examples"],
                supplements: &[],
            },
        }
    }
}

/// The `contracts/` folder at the repository root.
pub fn contracts_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../contracts")
}

/// Reads and checks `contracts/exceptions.toml`; panics with every problem found.
pub fn load_exceptions() -> Vec<Exception> {
    let path = contracts_dir().join("exceptions.toml");
    let text =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("contract: cannot read {} ({e})", path.display()));
    exceptions::parse(&text).unwrap_or_else(|problems| panic!("contract: {}:\n{}", path.display(), problems.join("\n")))
}

#[derive(Clone, Debug)]
struct Operation {
    id: String,
    method: String,
    template: Vec<Segment>,
    /// Pointer to the operation object in the bundle.
    pointer: String,
    /// Pointer to the path item (for path-level parameters).
    item_pointer: String,
}

#[derive(Debug)]
struct Description {
    file: String,
    version: String,
    openapi3: bool,
    base_path: String,
    operations: Vec<Operation>,
}

/// A resolved parameter of an operation.
#[derive(Debug)]
struct Param {
    name: String,
    location: String,
    required: bool,
    /// Pointer to the schema of the value (Swagger: the parameter itself for non-body ones).
    schema: String,
}

struct Inner {
    api: Api,
    bundle: Bundle,
    descriptions: Vec<Description>,
    exceptions: Vec<Exception>,
    validators: Mutex<HashMap<(String, bool, bool), Arc<jsonschema::Validator>>>,
}

/// The loaded description(s) of one API, with the exceptions recorded for it.
#[derive(Clone)]
pub struct Contract {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Contract {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let files: Vec<&str> = self.inner.descriptions.iter().map(|d| d.file.as_str()).collect();
        f.debug_struct("Contract").field("api", &self.inner.api).field("descriptions", &files).finish()
    }
}

impl Contract {
    /// Loads the description(s) for `api` from `contracts/` (found relative to this crate's
    /// manifest). Panics with a clear message if a file is missing or malformed. Loading is
    /// cached per process, so calling this in every test is cheap.
    pub fn load(api: Api) -> Contract {
        static LOADED: OnceLock<Mutex<HashMap<Api, Arc<Inner>>>> = OnceLock::new();
        let mut loaded = LOADED.get_or_init(Default::default).lock().unwrap_or_else(|p| p.into_inner());
        let inner = loaded.entry(api).or_insert_with(|| Arc::new(Inner::load(api))).clone();
        Contract { inner }
    }

    /// The API this contract describes.
    pub fn api(&self) -> Api {
        self.inner.api
    }

    /// Checks one exchange: request then response. `Err` lists every problem, each naming the
    /// method, the path and what is wrong.
    pub fn check(&self, exchange: &Exchange) -> Result<(), Vec<String>> {
        let problems = self.inner.check(exchange);
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems)
        }
    }

    /// Checks many exchanges; returns every problem of every exchange (empty = all conform).
    pub fn check_all(&self, exchanges: &[Exchange]) -> Vec<String> {
        exchanges.iter().flat_map(|e| self.inner.check(e)).collect()
    }

    /// Exchanges built from the examples shipped with the description(s): the `x-ms-examples`
    /// files (Azure), the extra example folders for a newer api-version, and the `examples`
    /// embedded in GitHub's description.
    pub fn examples(&self) -> Vec<Example> {
        examples::build(&self.inner)
    }
}

impl Inner {
    fn load(api: Api) -> Inner {
        let dir = contracts_dir();
        let exceptions: Vec<Exception> = load_exceptions().into_iter().filter(|e| e.api == api.key()).collect();
        let source = api.source();
        let mut entries: Vec<&str> = source.descriptions.to_vec();
        let extra: Vec<String> = exceptions
            .iter()
            .filter_map(|e| e.response_schema.as_deref())
            .map(|s| s.split('#').next().unwrap_or_default().to_string())
            .collect();
        entries.extend(extra.iter().map(String::as_str));
        entries.extend(source.supplements.iter().map(|s| s.file));
        let bundle = Bundle::load(&dir, &entries);
        let mut descriptions: Vec<Description> =
            source.descriptions.iter().map(|file| describe(&bundle, file)).collect();
        for supplement in source.supplements {
            let from = describe(&bundle, supplement.file);
            let primary = &mut descriptions[0];
            assert_eq!(from.version, primary.version, "contract: {} is another api-version", supplement.file);
            assert_eq!(from.base_path, primary.base_path, "contract: {} has another base path", supplement.file);
            for id in supplement.operations {
                assert!(
                    !primary.operations.iter().any(|op| op.id == *id),
                    "contract: {id} is already in {}",
                    primary.file
                );
                let op = from.operations.iter().find(|op| op.id == *id);
                let op = op.unwrap_or_else(|| panic!("contract: {} has no operation {id}", supplement.file));
                primary.operations.push(op.clone());
            }
        }
        let inner = Inner { api, bundle, descriptions, exceptions, validators: Mutex::new(HashMap::new()) };
        for e in &inner.exceptions {
            if let Some(s) = &e.response_schema {
                let pointer = exception_schema_pointer(s);
                assert!(inner.bundle.get(&pointer).is_some(), "contract: exception `{}`: no schema at {s}", e.id);
            }
        }
        inner
    }

    fn validator(&self, pointer: &str, request: bool, optional_nullable: bool) -> Arc<jsonschema::Validator> {
        let key = (pointer.to_string(), request, optional_nullable);
        if let Some(v) = self.validators.lock().unwrap_or_else(|p| p.into_inner()).get(&key) {
            return v.clone();
        }
        let root = Converter::new(&self.bundle, request, optional_nullable).root_for(pointer);
        let validator = jsonschema::draft4::options()
            .should_validate_formats(true)
            .build(&root)
            .unwrap_or_else(|e| panic!("contract: the schema at {pointer} does not compile: {e}"));
        let validator = Arc::new(validator);
        self.validators.lock().unwrap_or_else(|p| p.into_inner()).insert(key, validator.clone());
        validator
    }

    fn params(&self, desc: &Description, op: &Operation) -> Vec<Param> {
        let mut out: Vec<Param> = Vec::new();
        for owner in [&op.item_pointer, &op.pointer] {
            let list = format!("{owner}/parameters");
            let count = self.bundle.get(&list).and_then(Value::as_array).map_or(0, Vec::len);
            for i in 0..count {
                let (pointer, p) = self.bundle.resolve(&format!("{list}/{i}"));
                let name = p["name"].as_str().unwrap_or_default().to_string();
                let location = p["in"].as_str().unwrap_or_default().to_string();
                let required = p["required"] == Value::Bool(true);
                let schema = if desc.openapi3 || location == "body" { format!("{pointer}/schema") } else { pointer };
                out.retain(|q| !(q.name == name && q.location == location));
                out.push(Param { name, location, required, schema });
            }
        }
        out
    }

    /// Pointer to the request body schema, and whether a body is required.
    fn request_body(&self, desc: &Description, op: &Operation, params: &[Param]) -> Option<(String, bool)> {
        if desc.openapi3 {
            let body = format!("{}/requestBody", op.pointer);
            self.bundle.get(&body)?;
            let (pointer, value) = self.bundle.resolve(&body);
            let schema = json_content(&pointer, value)?;
            Some((schema, value["required"] == Value::Bool(true)))
        } else {
            params.iter().find(|p| p.location == "body").map(|p| (p.schema.clone(), p.required))
        }
    }

    /// For a documented status: `Some(schema pointer or None when the response has no body)`.
    fn response(&self, desc: &Description, op: &Operation, status: u16) -> Option<Option<String>> {
        let responses = format!("{}/responses", op.pointer);
        let key = [status.to_string(), "default".to_string()]
            .into_iter()
            .find(|k| self.bundle.get(&format!("{responses}/{k}")).is_some())?;
        let (pointer, value) = self.bundle.resolve(&format!("{responses}/{key}"));
        if desc.openapi3 {
            Some(json_content(&pointer, value))
        } else {
            Some(value.get("schema").map(|_| format!("{pointer}/schema")))
        }
    }

    fn find_operation<'d>(&self, desc: &'d Description, method: &str, path: &str) -> Result<&'d Operation, String> {
        let ci = self.api.case_insensitive_paths();
        let all = request_segments(path);
        let base = segments(&desc.base_path);
        let fits_base = all.len() >= base.len()
            && base.iter().zip(&all).all(|(b, p)| if ci { b.eq_ignore_ascii_case(p) } else { b == p });
        let rest = if fits_base { &all[base.len()..] } else { &[][..] };
        let literals = |op: &Operation| op.template.iter().filter(|s| matches!(s, Segment::Literal(_))).count();
        let matching: Vec<&Operation> = if fits_base {
            desc.operations.iter().filter(|op| match_template(&op.template, rest, ci).is_some()).collect()
        } else {
            Vec::new()
        };
        if let Some(op) = matching.iter().filter(|op| op.method == method).max_by_key(|op| literals(op)) {
            return Ok(op);
        }
        if matching.is_empty() {
            Err(format!("no operation in {} has a path matching `{path}` (unknown path)", desc.file))
        } else {
            let mut methods: Vec<&str> = matching.iter().map(|o| o.method.as_str()).collect();
            methods.dedup();
            Err(format!(
                "method {method} is not described for this path in {} (described: {})",
                desc.file,
                methods.join(", ")
            ))
        }
    }

    fn check(&self, ex: &Exchange) -> Vec<String> {
        let method = ex.method.to_ascii_uppercase();
        let (path, query) = split(&ex.path);
        let path = self.api.described_path(&path);
        let prefix = format!("{} {}", ex.method, ex.path);
        let excepted: Vec<&Exception> = self.exceptions.iter().filter(|e| e.covers(self.api, &method, &path)).collect();
        let allows = |kind: Kind| excepted.iter().copied().filter(move |e| e.kind == kind);

        let api_version = query.iter().find(|(n, _)| n == "api-version").map(|(_, v)| v.as_str());
        let desc = api_version
            .and_then(|v| self.descriptions.iter().find(|d| d.version == v))
            .unwrap_or(&self.descriptions[0]);
        let op = match self.find_operation(desc, &method, &path) {
            Ok(op) => op,
            Err(_) if allows(Kind::UndescribedOperation).next().is_some() => return Vec::new(),
            Err(problem) => return vec![format!("{prefix}: {problem}")],
        };
        let at = format!("{prefix} ({})", op.id);
        let mut problems = Vec::new();
        let params = self.params(desc, op);

        // Path parameter values.
        let rest = &request_segments(&path)[segments(&desc.base_path).len()..];
        for (name, value) in match_template(&op.template, rest, self.api.case_insensitive_paths()).unwrap_or_default() {
            if let Some(p) = params.iter().find(|p| p.location == "path" && p.name == name) {
                self.check_param_value(&at, p, &value, &mut problems);
            }
        }

        // Query parameters: declared, required ones present, values of the declared type.
        for (name, value) in &query {
            match params.iter().find(|p| p.location == "query" && &p.name == name) {
                // The api-version value is governed by the api-version rule below.
                Some(p) if p.name == "api-version" => {}
                Some(p) => self.check_param_value(&at, p, value, &mut problems),
                None if allows(Kind::UndocumentedQueryParameter).any(|e| e.query_parameters.contains(name)) => {}
                None => {
                    let known: Vec<&str> =
                        params.iter().filter(|p| p.location == "query").map(|p| p.name.as_str()).collect();
                    problems.push(format!(
                        "{at}: unknown query parameter `{name}` (the operation declares: {})",
                        if known.is_empty() { "none".to_string() } else { known.join(", ") }
                    ));
                }
            }
        }
        for p in params.iter().filter(|p| p.location == "query" && p.required) {
            if !query.iter().any(|(n, _)| n == &p.name) {
                problems.push(format!("{at}: required query parameter `{}` is missing", p.name));
            }
        }
        if let Some(v) = api_version {
            if params.iter().any(|p| p.name == "api-version" && p.location == "query")
                && v != desc.version
                && !allows(Kind::ApiVersion).any(|e| e.api_versions.iter().any(|a| a == v))
            {
                problems.push(format!(
                    "{at}: api-version `{v}` is not the description's version `{}` and no exception allows it",
                    desc.version
                ));
            }
        }

        // Request body.
        match (self.request_body(desc, op, &params), &ex.request_body) {
            (None, Some(_)) => problems.push(format!("{at}: the operation takes no request body, but one was sent")),
            (Some((_, true)), None) => problems.push(format!("{at}: the request body is required but none was sent")),
            (Some((schema, _)), Some(body)) => problems.extend(
                self.validate(&schema, true, body, &Leniency::default())
                    .into_iter()
                    .map(|m| format!("{at}: request body {m}")),
            ),
            _ => {}
        }

        // Response status and body.
        let status = ex.status;
        let schema = match self.response(desc, op, status) {
            Some(schema) => schema,
            None => match allows(Kind::UndocumentedStatus).find(|e| e.statuses.contains(&status)) {
                Some(e) => e.response_schema.as_deref().map(exception_schema_pointer),
                None => {
                    let documented: Vec<String> = self
                        .bundle
                        .get(&format!("{}/responses", op.pointer))
                        .and_then(Value::as_object)
                        .map(|r| r.keys().cloned().collect())
                        .unwrap_or_default();
                    problems.push(format!(
                        "{at}: response status {status} is not documented (documented: {})",
                        documented.join(", ")
                    ));
                    return problems;
                }
            },
        };
        let leniency = Leniency {
            extra_properties: allows(Kind::UndocumentedProperty).flat_map(|e| e.properties.iter().cloned()).collect(),
            optional_nullable: allows(Kind::NullableOptionalProperties).next().is_some(),
        };
        match (schema, &ex.response_body) {
            (Some(_), None) => {
                problems.push(format!("{at}: response {status} has no body, but the description defines one"))
            }
            (None, Some(_)) => {
                problems.push(format!("{at}: response {status} has a body, but the description defines none"))
            }
            (Some(schema), Some(body)) => {
                problems.extend(
                    self.validate(&schema, false, body, &leniency)
                        .into_iter()
                        .map(|m| format!("{at}: response {status} body {m}")),
                );
                problems.extend(
                    self.json_string_fields(op, status, body, &leniency)
                        .into_iter()
                        .map(|m| format!("{at}: response {status} body {m}")),
                );
            }
            (None, None) => {}
        }
        problems
    }

    /// `x-json-string-fields` on a response (`{"<pointer>": <schema>}`): the string at each
    /// pointer holds JSON, which must parse and validate against its schema (the scale set
    /// message's `body` is a JSON string holding an array of job messages).
    fn json_string_fields(&self, op: &Operation, status: u16, body: &Value, leniency: &Leniency) -> Vec<String> {
        let response = format!("{}/responses/{status}", op.pointer);
        if self.bundle.get(&response).is_none() {
            return Vec::new();
        }
        let (pointer, _) = self.bundle.resolve(&response);
        let fields = format!("{pointer}/x-json-string-fields");
        let Some(map) = self.bundle.get(&fields).and_then(Value::as_object) else { return Vec::new() };
        let mut problems = Vec::new();
        for at in map.keys() {
            let Some(text) = body.pointer(at).and_then(Value::as_str) else { continue };
            match serde_json::from_str::<Value>(text) {
                Ok(inner) => problems.extend(
                    self.validate(&format!("{fields}/{}", escape(at)), false, &inner, leniency)
                        .into_iter()
                        .map(|m| format!("inside the JSON string at `{at}` {m}")),
                ),
                Err(e) => problems.push(format!("at `{at}`: the string does not hold JSON ({e})")),
            }
        }
        problems
    }

    fn check_param_value(&self, at: &str, p: &Param, raw: &str, problems: &mut Vec<String>) {
        let (_, schema) = self.bundle.resolve(&p.schema);
        let value = match schema.get("type").and_then(Value::as_str) {
            Some("integer") | Some("number") => match raw.parse::<f64>() {
                Ok(_) => serde_json::from_str(raw).unwrap_or(Value::String(raw.to_string())),
                Err(_) => Value::String(raw.to_string()),
            },
            Some("boolean") => match raw {
                "true" => Value::Bool(true),
                "false" => Value::Bool(false),
                _ => Value::String(raw.to_string()),
            },
            Some("array") => Value::Array(raw.split(',').map(|s| Value::String(s.to_string())).collect()),
            _ => Value::String(raw.to_string()),
        };
        for m in self.validate(&p.schema, false, &value, &Leniency::default()) {
            problems.push(format!("{at}: {} parameter `{}` = `{raw}` {m}", p.location, p.name));
        }
    }

    /// Validates `instance`; each message starts with where in the instance the problem is.
    fn validate(&self, schema: &str, request: bool, instance: &Value, leniency: &Leniency) -> Vec<String> {
        let validator = self.validator(schema, request, leniency.optional_nullable);
        validator.iter_errors(instance).flat_map(|e| render(&e, leniency)).collect()
    }
}

/// What the exceptions covering an exchange relax in its response body.
#[derive(Default)]
struct Leniency {
    extra_properties: Vec<String>,
    optional_nullable: bool,
}

fn location_of(error: &ValidationError<'_>) -> String {
    let location = error.instance_path().to_string();
    if location.is_empty() {
        "at the top".to_string()
    } else {
        format!("at `{location}`")
    }
}

/// Messages for one validation error, minus what the leniency allows. An `anyOf`/`oneOf` failure
/// is satisfied when one alternative fails only on allowed fields; otherwise the alternatives the
/// value has the right type for explain why.
fn render(error: &ValidationError<'_>, leniency: &Leniency) -> Vec<String> {
    let at = location_of(error);
    match error.kind() {
        ValidationErrorKind::AdditionalProperties { unexpected } => {
            let location = error.instance_path().to_string();
            let undocumented: Vec<String> = unexpected
                .iter()
                .filter(|name| {
                    let pointer = format!("{location}/{}", escape(name));
                    !leniency.extra_properties.iter().any(|pattern| pointer_matches(pattern, &pointer))
                })
                .map(|name| format!("`{name}`"))
                .collect();
            if undocumented.is_empty() {
                return Vec::new();
            }
            vec![format!(
                "{at}: undocumented field(s) {} (the description does not define them here)",
                undocumented.join(", ")
            )]
        }
        ValidationErrorKind::AnyOf { context } | ValidationErrorKind::OneOfNotValid { context } => {
            let branches: Vec<(bool, Vec<String>)> = context
                .iter()
                .map(|errors| {
                    let wrong_type = errors.len() == 1
                        && matches!(errors[0].kind(), ValidationErrorKind::Type { .. })
                        && errors[0].instance_path() == error.instance_path();
                    (wrong_type, errors.iter().flat_map(|e| render(e, leniency)).collect())
                })
                .collect();
            if branches.iter().any(|(_, messages)| messages.is_empty()) {
                return Vec::new();
            }
            let relevant: Vec<&(bool, Vec<String>)> = branches.iter().filter(|(wrong_type, _)| !wrong_type).collect();
            if relevant.len() == 1 {
                return relevant[0].1.clone();
            }
            let reasons: Vec<String> = branches.iter().flat_map(|(_, m)| m.iter().cloned()).collect();
            vec![format!("{at}: matches none of the alternatives ({})", short(&reasons.join("; ")))]
        }
        _ => vec![format!("{at}: {}", short(&error.to_string()))],
    }
}

/// Shortens a message that quotes a large instance.
fn short(message: &str) -> String {
    const MAX: usize = 400;
    if message.len() <= MAX {
        return message.to_string();
    }
    let mut end = MAX;
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &message[..end])
}

/// `file#/pointer` (file relative to `contracts/`) as a bundle pointer.
fn exception_schema_pointer(reference: &str) -> String {
    let (file, pointer) = reference.split_once('#').unwrap_or((reference, ""));
    format!("{}{pointer}", file_pointer(file))
}

/// The schema pointer of the JSON content of an OpenAPI 3 request body or response.
fn json_content(pointer: &str, value: &Value) -> Option<String> {
    let content = value.get("content")?.as_object()?;
    let media = content
        .keys()
        .find(|k| k.as_str() == "application/json")
        .or_else(|| content.keys().find(|k| k.contains("json")))?;
    content[media].get("schema")?;
    Some(format!("{pointer}/content/{}/schema", escape(media)))
}

fn describe(bundle: &Bundle, file: &str) -> Description {
    let top = file_pointer(file);
    let doc = bundle.get(&top).expect("loaded");
    let openapi3 = doc.get("openapi").is_some();
    let version = doc["info"]["version"].as_str().unwrap_or_default().to_string();
    let base_path = doc.get("basePath").and_then(Value::as_str).unwrap_or_default().to_string();
    let mut operations = Vec::new();
    for (path, item) in doc["paths"].as_object().into_iter().flatten() {
        let item_pointer = format!("{top}/paths/{}", escape(path));
        for (method, op) in item.as_object().into_iter().flatten() {
            if !["get", "put", "post", "patch", "delete", "head", "options"].contains(&method.as_str()) {
                continue;
            }
            operations.push(Operation {
                id: op["operationId"].as_str().unwrap_or(path).to_string(),
                method: method.to_ascii_uppercase(),
                template: template(path),
                pointer: format!("{item_pointer}/{method}"),
                item_pointer: item_pointer.clone(),
            });
        }
    }
    Description { file: file.to_string(), version, openapi3, base_path, operations }
}
