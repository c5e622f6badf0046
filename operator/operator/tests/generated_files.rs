//! Committed generated files must match what the code generates.

use std::path::PathBuf;

fn repo_file(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..").join(name)
}

fn assert_fresh(path: &str, generated: &str) {
    let committed = std::fs::read_to_string(repo_file(path)).unwrap_or_default();
    assert!(committed == generated, "{path} is stale or missing: run `just generate` and commit the result");
}

#[test]
fn config_schema_is_current() {
    assert_fresh("schema/operator-config.schema.json", &operator::config::json_schema());
}

#[test]
fn openapi_document_is_current() {
    assert_fresh("schema/openapi.json", &operator::api::openapi_json());
}
