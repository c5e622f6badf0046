//! Loading description files into one bundle, and turning their Swagger 2.0 / OpenAPI 3.0 schemas
//! into strict JSON Schema (draft 4) for the validator.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::{Path, PathBuf};

use serde_json::{json, Map, Value};

/// Every loaded file under `{"x-files": {"<relative path>": document}}`, with every `$ref`
/// rewritten to an absolute pointer into the bundle (`#/x-files/<file>/<pointer>`).
pub(crate) struct Bundle {
    pub root: Value,
}

/// Escapes one JSON pointer segment.
pub(crate) fn escape(segment: &str) -> String {
    segment.replace('~', "~0").replace('/', "~1")
}

/// Pointer (with leading `#`) to the top of a bundled file.
pub(crate) fn file_pointer(rel: &str) -> String {
    format!("#/x-files/{}", escape(rel))
}

impl Bundle {
    /// Loads `entries` (paths relative to `dir`) and every file their `$ref`s reach.
    pub fn load(dir: &Path, entries: &[&str]) -> Bundle {
        let mut files = Map::new();
        let mut queue: VecDeque<String> = entries.iter().map(|e| e.to_string()).collect();
        while let Some(rel) = queue.pop_front() {
            if files.contains_key(&rel) {
                continue;
            }
            let path = dir.join(&rel);
            let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
                panic!("contract: cannot read API description {} ({e}); the files live in contracts/", path.display())
            });
            let mut doc: Value =
                serde_json::from_str(&text).unwrap_or_else(|e| panic!("contract: {} is not JSON: {e}", path.display()));
            rewrite_refs(&mut doc, &rel, &mut queue);
            files.insert(rel, doc);
        }
        Bundle { root: json!({ "x-files": files }) }
    }

    /// The value at `#/...` in the bundle.
    pub fn get(&self, pointer: &str) -> Option<&Value> {
        self.root.pointer(pointer.trim_start_matches('#'))
    }

    /// Follows `$ref` chains from `pointer`: the final pointer and value.
    pub fn resolve(&self, pointer: &str) -> (String, &Value) {
        let mut pointer = pointer.to_string();
        for _ in 0..32 {
            let value = self.get(&pointer).unwrap_or_else(|| panic!("contract: dangling reference {pointer}"));
            match value.get("$ref").and_then(Value::as_str) {
                Some(next) => pointer = next.to_string(),
                None => return (pointer, value),
            }
        }
        panic!("contract: reference loop at {pointer}")
    }
}

/// Joins a relative reference onto the directory of `from` (both relative to `contracts/`).
fn join(from: &str, reference: &str) -> String {
    let mut parts: Vec<&str> = from.split('/').collect();
    parts.pop();
    for seg in reference.split('/') {
        match seg {
            "." | "" => {}
            ".." => {
                parts.pop();
            }
            s => parts.push(s),
        }
    }
    let buf: PathBuf = parts.iter().collect();
    buf.to_string_lossy().replace('\\', "/")
}

fn rewrite_refs(value: &mut Value, file: &str, queue: &mut VecDeque<String>) {
    match value {
        Value::Object(map) => {
            for (key, child) in map.iter_mut() {
                // Example files are data, not part of the schema graph.
                if key == "x-ms-examples" {
                    continue;
                }
                if key == "$ref" {
                    if let Value::String(r) = child {
                        let (target_file, pointer) = match r.split_once('#') {
                            Some(("", p)) => (file.to_string(), p.to_string()),
                            Some((f, p)) => (join(file, f), p.to_string()),
                            None => (join(file, r), String::new()),
                        };
                        if target_file != file {
                            queue.push_back(target_file.clone());
                        }
                        *r = format!("{}{}", file_pointer(&target_file), pointer);
                    }
                } else {
                    rewrite_refs(child, file, queue);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|v| rewrite_refs(v, file, queue)),
        _ => {}
    }
}

/// Whether a raw schema declares itself nullable (OpenAPI 3.0 `nullable`, Swagger `x-nullable`).
fn nullable(schema: &Map<String, Value>) -> bool {
    schema.get("nullable") == Some(&Value::Bool(true)) || schema.get("x-nullable") == Some(&Value::Bool(true))
}

/// Keywords that carry no validation meaning (or that this converter handles itself).
const DROPPED: &[&str] = &[
    "nullable",
    "x-nullable",
    "readOnly",
    "writeOnly",
    "discriminator",
    "description",
    "title",
    "example",
    "examples",
    "externalDocs",
    "xml",
    "deprecated",
    "default",
];

/// Converts the schemas reachable from one root into a self-contained JSON Schema (draft 4).
///
/// * every object schema with `properties` and no `additionalProperties` is closed
///   (`additionalProperties: false`) and typed `object`;
/// * `allOf` branches that contribute properties are merged into one object before closing;
/// * `nullable` / `x-nullable` admit `null`;
/// * in a request, `readOnly` properties are removed (so a closed object rejects them) and never
///   required.
pub(crate) struct Converter<'a> {
    bundle: &'a Bundle,
    request: bool,
    /// Optional properties admit `null` (an exception of kind `nullable-optional-properties`).
    optional_nullable: bool,
    defs: BTreeMap<String, Value>,
    /// Definition name given to each referenced pointer.
    names: HashMap<String, String>,
}

impl<'a> Converter<'a> {
    pub fn new(bundle: &'a Bundle, request: bool, optional_nullable: bool) -> Self {
        Converter { bundle, request, optional_nullable, defs: BTreeMap::new(), names: HashMap::new() }
    }

    /// The validator's root schema for the schema at `pointer`.
    pub fn root_for(mut self, pointer: &str) -> Value {
        let main = self.convert(&json!({ "$ref": pointer }));
        json!({ "definitions": self.defs, "allOf": [main] })
    }

    /// A URI-safe definition name for a referenced pointer: its last segment and a number.
    fn def_name(&mut self, pointer: &str) -> (String, bool) {
        if let Some(name) = self.names.get(pointer) {
            return (name.clone(), false);
        }
        let last = pointer.rsplit('/').next().unwrap_or_default();
        let clean: String = last.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '_' }).collect();
        let name = format!("{clean}_{}", self.names.len());
        self.names.insert(pointer.to_string(), name.clone());
        (name, true)
    }

    fn target(&self, pointer: &str) -> &'a Value {
        self.bundle.get(pointer).unwrap_or_else(|| panic!("contract: dangling reference {pointer}"))
    }

    fn is_read_only(&self, schema: &Value) -> bool {
        if schema.get("readOnly") == Some(&Value::Bool(true)) {
            return true;
        }
        match schema.get("$ref").and_then(Value::as_str) {
            Some(r) => self.target(r).get("readOnly") == Some(&Value::Bool(true)),
            None => false,
        }
    }

    /// Whether a schema (following refs and `allOf`) declares object properties.
    fn has_properties(&self, schema: &Value, depth: usize) -> bool {
        if depth > 16 {
            return false;
        }
        if let Some(r) = schema.get("$ref").and_then(Value::as_str) {
            return self.has_properties(self.target(r), depth + 1);
        }
        schema.get("properties").is_some()
            || schema
                .get("allOf")
                .and_then(Value::as_array)
                .is_some_and(|b| b.iter().any(|b| self.has_properties(b, depth + 1)))
    }

    /// Collects properties, required names and `additionalProperties` of a schema and its `allOf`
    /// branches (branches first, so the schema's own declarations win).
    fn collect(
        &self,
        schema: &Value,
        props: &mut Map<String, Value>,
        required: &mut Vec<Value>,
        extra: &mut Option<Value>,
    ) {
        if let Some(r) = schema.get("$ref").and_then(Value::as_str) {
            return self.collect(self.target(r), props, required, extra);
        }
        for branch in schema.get("allOf").and_then(Value::as_array).into_iter().flatten() {
            self.collect(branch, props, required, extra);
        }
        if let Some(p) = schema.get("properties").and_then(Value::as_object) {
            props.extend(p.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
        for r in schema.get("required").and_then(Value::as_array).into_iter().flatten() {
            if !required.contains(r) {
                required.push(r.clone());
            }
        }
        if let Some(a) = schema.get("additionalProperties") {
            *extra = Some(a.clone());
        }
    }

    fn convert(&mut self, schema: &Value) -> Value {
        let Some(obj) = schema.as_object() else { return schema.clone() };

        if let Some(r) = obj.get("$ref").and_then(Value::as_str) {
            let (name, new) = self.def_name(r);
            if new {
                let converted = self.convert(self.target(r));
                self.defs.insert(name.clone(), converted);
            }
            let reference = json!({ "$ref": format!("#/definitions/{name}") });
            return if nullable(obj) { json!({ "anyOf": [reference, { "type": "null" }] }) } else { reference };
        }

        let mut out = Map::new();
        let mut is_nullable = nullable(obj);
        let mut source = obj.clone();

        // Merge allOf branches that contribute properties, so the closed object admits all of them.
        if obj.contains_key("allOf") && self.has_properties(schema, 0) {
            let (mut props, mut required, mut extra) = (Map::new(), Vec::new(), None);
            self.collect(schema, &mut props, &mut required, &mut extra);
            source.remove("allOf");
            source.insert("properties".into(), Value::Object(props));
            source.insert("required".into(), Value::Array(required));
            match extra {
                Some(e) => source.insert("additionalProperties".into(), e),
                None => source.remove("additionalProperties"),
            };
        }

        // Several nullable oneOf branches would all match null; hoist the nullability.
        if let Some(branches) = source.get_mut("oneOf").and_then(Value::as_array_mut) {
            if branches.iter().filter(|b| b.as_object().is_some_and(nullable)).count() > 1 {
                for b in branches.iter_mut().filter_map(Value::as_object_mut) {
                    b.remove("nullable");
                    b.remove("x-nullable");
                }
                is_nullable = true;
            }
        }

        for (key, value) in &source {
            if DROPPED.contains(&key.as_str()) || key.starts_with("x-") {
                continue;
            }
            let converted = match key.as_str() {
                "properties" => {
                    let mut props = Map::new();
                    let required = source.get("required").and_then(Value::as_array);
                    for (name, prop) in value.as_object().into_iter().flatten() {
                        if self.request && self.is_read_only(prop) {
                            continue;
                        }
                        let mut converted = self.convert(prop);
                        let optional = !required.is_some_and(|r| r.iter().any(|n| n == name));
                        if self.optional_nullable && optional {
                            converted = json!({ "anyOf": [converted, { "type": "null" }] });
                        }
                        props.insert(name.clone(), converted);
                    }
                    Value::Object(props)
                }
                "required" => {
                    let declared = source.get("properties").and_then(Value::as_object);
                    let keep = |name: &Value| {
                        let prop = name.as_str().and_then(|n| declared.and_then(|d| d.get(n)));
                        !(self.request && prop.is_some_and(|p| self.is_read_only(p)))
                    };
                    let names: Vec<Value> =
                        value.as_array().into_iter().flatten().filter(|n| keep(n)).cloned().collect();
                    if names.is_empty() {
                        continue;
                    }
                    Value::Array(names)
                }
                "additionalProperties" | "items" | "not" => self.convert(value),
                "allOf" | "anyOf" | "oneOf" => {
                    Value::Array(value.as_array().into_iter().flatten().map(|b| self.convert(b)).collect())
                }
                "type" if value == "file" => continue,
                _ => value.clone(),
            };
            out.insert(key.clone(), converted);
        }

        if out.contains_key("properties") {
            out.entry("type").or_insert_with(|| json!("object"));
            out.entry("additionalProperties").or_insert(Value::Bool(false));
        }

        if is_nullable {
            let mut handled = false;
            if let Some(Value::String(t)) = out.get("type").cloned() {
                out.insert("type".into(), json!([t, "null"]));
                handled = true;
            }
            if let Some(Value::Array(options)) = out.get_mut("enum") {
                if !options.contains(&Value::Null) {
                    options.push(Value::Null);
                }
                handled = handled || !out.contains_key("type");
            }
            if !handled {
                return json!({ "anyOf": [Value::Object(out), { "type": "null" }] });
            }
        }
        Value::Object(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bundle(doc: Value) -> Bundle {
        Bundle { root: json!({ "x-files": { "d.json": doc } }) }
    }

    #[test]
    fn joins_relative_references() {
        assert_eq!(join("azure/kv/secrets.json", "common.json"), "azure/kv/common.json");
        assert_eq!(join("azure/kv/x/secrets.json", "../common.json"), "azure/kv/common.json");
    }

    #[test]
    fn all_of_branches_are_merged_before_the_object_is_closed() {
        let b = bundle(json!({ "definitions": {
            "Resource": { "properties": { "id": { "type": "string", "readOnly": true }, "location": { "type": "string" } }, "required": ["location"] },
            "Vmss": { "allOf": [{ "$ref": "#/x-files/d.json/definitions/Resource" }], "properties": { "sku": { "type": "string" } } }
        }}));
        let root = Converter::new(&b, false, false).root_for("#/x-files/d.json/definitions/Vmss");
        let v = jsonschema::draft4::new(&root).unwrap();
        assert!(v.is_valid(&json!({ "id": "x", "location": "w", "sku": "s" })));
        assert!(!v.is_valid(&json!({ "location": "w", "extra": 1 })));
        assert!(!v.is_valid(&json!({ "sku": "s" })));
        // In a request, readOnly properties are neither required nor accepted.
        let root = Converter::new(&b, true, false).root_for("#/x-files/d.json/definitions/Vmss");
        let v = jsonschema::draft4::new(&root).unwrap();
        assert!(v.is_valid(&json!({ "location": "w" })));
        assert!(!v.is_valid(&json!({ "location": "w", "id": "x" })));
    }

    #[test]
    fn nullable_admits_null_and_nothing_else_new() {
        let b = bundle(json!({ "s": {
            "type": "object",
            "properties": {
                "a": { "type": "string", "nullable": true },
                "b": { "$ref": "#/x-files/d.json/t", "nullable": true },
                "c": { "oneOf": [{ "type": "string", "nullable": true }, { "type": "integer", "nullable": true }] },
                "d": { "type": "string", "enum": ["x"], "x-nullable": true }
            }
        }, "t": { "type": "integer" } }));
        let root = Converter::new(&b, false, false).root_for("#/x-files/d.json/s");
        let v = jsonschema::draft4::new(&root).unwrap();
        assert!(v.is_valid(&json!({ "a": null, "b": null, "c": null, "d": null })));
        assert!(v.is_valid(&json!({ "a": "x", "b": 1, "c": 2, "d": "x" })));
        assert!(!v.is_valid(&json!({ "a": 1 })));
        assert!(!v.is_valid(&json!({ "d": "y" })));
    }
}
