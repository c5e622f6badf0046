//! The fake shares no code with the operator (lib.rs, "Why a model of its own"): a fake that
//! used the operator's types would share its misunderstandings and could not catch them.

#[test]
fn the_fake_depends_on_neither_operator_core_nor_operator_sim() {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml")).unwrap();
    let manifest: toml::Table = toml::from_str(&text).unwrap();
    let names: Vec<&String> = ["dependencies", "dev-dependencies", "build-dependencies"]
        .iter()
        .filter_map(|table| manifest.get(*table).and_then(toml::Value::as_table))
        .flat_map(|deps| deps.keys())
        .collect();
    assert!(names.iter().any(|n| *n == "axum"), "the manifest was read: {names:?}");
    for name in names {
        assert!(!name.starts_with("operator"), "fake-github must not depend on `{name}`");
    }
}
