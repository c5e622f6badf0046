//! Exchanges built from the examples that ship with the descriptions.

use std::path::Path;

use serde::Deserialize;
use serde_json::Value;

use crate::exceptions::Kind;
use crate::paths::Segment;
use crate::schema::escape;
use crate::{contracts_dir, Api, Description, Exchange, Inner, Operation};

/// One exchange built from an official example.
#[derive(Clone, Debug)]
pub struct Example {
    /// Where it came from: `file (status)` for Azure example files, `operationId status name`
    /// for GitHub's embedded examples.
    pub name: String,
    /// The example file (relative to `contracts/`), for Azure examples.
    pub file: Option<String>,
    pub exchange: Exchange,
}

pub(crate) fn build(inner: &Inner) -> Vec<Example> {
    let mut out = Vec::new();
    for desc in &inner.descriptions {
        for op in &desc.operations {
            if desc.openapi3 {
                // Only GitHub's description embeds examples; one written here has recorded ones.
                if inner.api == Api::GithubRest {
                    github_examples(inner, desc, op, &mut out);
                }
            } else {
                let examples = inner.bundle.get(&format!("{}/x-ms-examples", op.pointer));
                for reference in
                    examples.and_then(Value::as_object).into_iter().flatten().filter_map(|(_, r)| r["$ref"].as_str())
                {
                    if let Some(file) = find_example_file(&desc.file, reference) {
                        azure_example(inner, desc, op, &file, &mut out);
                    }
                }
            }
        }
    }
    let primary = &inner.descriptions[0];
    for folder in inner.api.source().foreign_examples {
        let mut files: Vec<String> = std::fs::read_dir(contracts_dir().join(folder))
            .unwrap_or_else(|e| panic!("contract: cannot list contracts/{folder}: {e}"))
            .filter_map(|e| e.ok())
            .map(|e| format!("{folder}/{}", e.file_name().to_string_lossy()))
            .filter(|f| f.ends_with(".json"))
            .collect();
        files.sort();
        for file in files {
            let doc = read(&file);
            let id = match doc["operationId"].as_str() {
                Some(id) => id.to_string(),
                None => operation_id_from_file_name(&file),
            };
            match primary.operations.iter().find(|op| op.id == id) {
                Some(op) => azure_example(inner, primary, op, &file, &mut out),
                None => panic!("contract: example {file} names operation `{id}`, which {} lacks", primary.file),
            }
        }
    }
    for folder in inner.api.source().recorded_examples {
        out.extend(recorded(folder));
    }
    out
}

/// A recorded exchange with where it came from. A body key that is absent means no body;
/// `null` means the JSON body `null` (SS's test of A2 answers that).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Recorded {
    source: Value,
    exchange: RecordedExchange,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RecordedExchange {
    method: String,
    path: String,
    #[serde(default, deserialize_with = "present")]
    request_body: Option<Value>,
    status: u16,
    #[serde(default, deserialize_with = "present")]
    response_body: Option<Value>,
}

/// A present key, even `null`, is a body.
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(d).map(Some)
}

fn recorded(folder: &str) -> Vec<Example> {
    let mut files: Vec<String> = std::fs::read_dir(contracts_dir().join(folder))
        .unwrap_or_else(|e| panic!("contract: cannot list contracts/{folder}: {e}"))
        .filter_map(|e| e.ok())
        .map(|e| format!("{folder}/{}", e.file_name().to_string_lossy()))
        .filter(|f| f.ends_with(".json"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|file| {
            let r: Recorded = serde_json::from_value(read(&file))
                .unwrap_or_else(|e| panic!("contract: {file} is not {{\"source\", \"exchange\"}}: {e}"));
            assert!(
                r.source.get("file").and_then(Value::as_str).is_some(),
                "contract: {file}: `source.file` is missing"
            );
            let e = r.exchange;
            let exchange = Exchange {
                method: e.method,
                path: e.path,
                request_body: e.request_body,
                status: e.status,
                response_body: e.response_body,
            };
            Example { name: format!("{file} ({})", exchange.status), file: Some(file), exchange }
        })
        .collect()
}

/// Some examples carry no `operationId`; their file names follow `<Group>_<Verb>_<Variant>.json`,
/// where the operation id is `<Group>s_<Verb>` (`VirtualMachineScaleSetVM_Delete_Force` is
/// `VirtualMachineScaleSetVMs_Delete`).
fn operation_id_from_file_name(file: &str) -> String {
    let stem = Path::new(file).file_stem().map(|s| s.to_string_lossy().to_string()).unwrap_or_default();
    let mut parts = stem.split('_');
    let group = parts.next().unwrap_or_default();
    let verb = parts.next().unwrap_or_default();
    format!("{group}s_{verb}")
}

fn read(file: &str) -> Value {
    let path = contracts_dir().join(file);
    let text =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("contract: cannot read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("contract: {} is not JSON: {e}", path.display()))
}

/// The copied file for an `x-ms-examples` reference: the exact name, or a transcribed copy named
/// `<stem>.<suffix>.json` beside it. `None` when the example was not copied.
fn find_example_file(description: &str, reference: &str) -> Option<String> {
    let dir = Path::new(description).parent()?.join(Path::new(reference).parent()?);
    let dir = dir.to_string_lossy().replace("/./", "/").trim_end_matches("/.").to_string();
    let stem = Path::new(reference).file_stem()?.to_string_lossy().to_string();
    let exact = format!("{dir}/{stem}.json");
    if contracts_dir().join(&exact).is_file() {
        return Some(exact);
    }
    let mut names: Vec<String> = std::fs::read_dir(contracts_dir().join(&dir))
        .ok()?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().to_string())
        .filter(|n| n.starts_with(&format!("{stem}.")) && n.ends_with(".json"))
        .collect();
    names.sort();
    names.first().map(|n| format!("{dir}/{n}"))
}

fn as_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'{' | b'}' | b'$' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn fill_path(desc: &Description, op: &Operation, value_of: impl Fn(&str) -> String) -> String {
    let mut path = desc.base_path.trim_end_matches('/').to_string();
    for seg in &op.template {
        path.push('/');
        match seg {
            Segment::Literal(l) => path.push_str(l),
            Segment::Param(name) => path.push_str(&encode(&value_of(name))),
        }
    }
    path
}

fn azure_example(inner: &Inner, desc: &Description, op: &Operation, file: &str, out: &mut Vec<Example>) {
    let doc = read(file);
    let given = doc["parameters"].as_object().cloned().unwrap_or_default();
    let params = inner.params(desc, op);
    let path = fill_path(desc, op, |name| given.get(name).map(as_text).unwrap_or_else(|| "x".into()));
    let mut query = Vec::new();
    let mut body = None;
    let mut note = String::new();
    for p in &params {
        let Some(value) = given.get(&p.name) else { continue };
        match p.location.as_str() {
            "query" => {
                let mut text = as_text(value);
                if p.name == "api-version" && text != desc.version && !accepted_version(inner, op, &path, &text) {
                    note = format!(" (api-version {text} of the example replaced by {})", desc.version);
                    text = desc.version.clone();
                }
                query.push(format!("{}={}", encode(&p.name), encode(&text)));
            }
            "body" => body = Some(value.clone()),
            _ => {}
        }
    }
    let path_and_query = if query.is_empty() { path } else { format!("{path}?{}", query.join("&")) };
    for (status, response) in doc["responses"].as_object().into_iter().flatten() {
        let Ok(status) = status.parse::<u16>() else { continue };
        out.push(Example {
            name: format!("{file} ({status}){note}"),
            file: Some(file.to_string()),
            exchange: Exchange {
                method: op.method.clone(),
                path: path_and_query.clone(),
                request_body: body.clone(),
                status,
                response_body: response.get("body").cloned(),
            },
        });
    }
}

fn accepted_version(inner: &Inner, op: &Operation, path: &str, version: &str) -> bool {
    inner.exceptions.iter().any(|e| {
        e.kind == Kind::ApiVersion
            && e.covers(inner.api, &op.method, path)
            && e.api_versions.iter().any(|v| v == version)
    })
}

/// The value of an OpenAPI 3 example object (following `$ref`).
fn example_values(inner: &Inner, pointer: &str) -> Vec<(String, Value)> {
    let Some(examples) = inner.bundle.get(pointer).and_then(Value::as_object) else { return Vec::new() };
    examples
        .keys()
        .filter_map(|name| {
            let (_, ex) = inner.bundle.resolve(&format!("{pointer}/{}", escape(name)));
            ex.get("value").map(|v| (name.clone(), v.clone()))
        })
        .collect()
}

fn github_examples(inner: &Inner, desc: &Description, op: &Operation, out: &mut Vec<Example>) {
    let params = inner.params(desc, op);
    let path = fill_path(desc, op, |name| {
        let Some(p) = params.iter().find(|p| p.name == name) else { return "x".into() };
        let (_, schema) = inner.bundle.resolve(&p.schema);
        match schema.get("type").and_then(Value::as_str) {
            Some("integer") => "42".into(),
            _ => "octo".into(),
        }
    });
    let mut request = None;
    if let Some((_, required)) = inner.request_body(desc, op, &params) {
        let (pointer, _) = inner.bundle.resolve(&format!("{}/requestBody", op.pointer));
        request = example_values(inner, &format!("{pointer}/content/application~1json/examples")).into_iter().next();
        if request.is_none() && required {
            return; // No official request example to build an exchange from.
        }
    }
    let responses = format!("{}/responses", op.pointer);
    for status in inner.bundle.get(&responses).and_then(Value::as_object).into_iter().flatten().map(|(k, _)| k.clone())
    {
        let Ok(code) = status.parse::<u16>() else { continue };
        let (pointer, response) = inner.bundle.resolve(&format!("{responses}/{status}"));
        let exchange = |body: Option<Value>| Exchange {
            method: op.method.clone(),
            path: path.clone(),
            request_body: request.as_ref().map(|(_, v)| v.clone()),
            status: code,
            response_body: body,
        };
        if response.get("content").is_none() {
            out.push(Example { name: format!("{} {status}", op.id), file: None, exchange: exchange(None) });
            continue;
        }
        for (name, value) in example_values(inner, &format!("{pointer}/content/application~1json/examples")) {
            out.push(Example {
                name: format!("{} {status} {name}", op.id),
                file: None,
                exchange: exchange(Some(value)),
            });
        }
    }
}
