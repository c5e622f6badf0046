//! The fake shares no code with the operator (lib.rs, "Why a model of its own"): a fake that
//! used the operator's types would share its misunderstandings and could not catch them.

#[test]
fn the_fake_depends_on_neither_operator_core_nor_operator_sim() {
    let manifest = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml")).unwrap();
    let manifest: toml_like::Manifest = toml_like::parse(&manifest);
    for name in manifest.dependency_names() {
        assert!(!name.starts_with("operator"), "fake-github must not depend on `{name}`");
    }
    assert!(manifest.dependency_names().iter().any(|n| n == "axum"), "the manifest was read");
}

/// Just enough of Cargo.toml: the keys of the dependency tables.
mod toml_like {
    pub struct Manifest(Vec<String>);

    pub fn parse(text: &str) -> Manifest {
        let mut names = Vec::new();
        let mut in_deps = false;
        for line in text.lines().map(str::trim) {
            if line.starts_with('[') {
                in_deps = line.trim_matches(|c| c == '[' || c == ']').ends_with("dependencies");
            } else if in_deps {
                if let Some((key, _)) = line.split_once('=') {
                    names.push(key.trim().to_owned());
                }
            }
        }
        Manifest(names)
    }

    impl Manifest {
        pub fn dependency_names(&self) -> &[String] {
            &self.0
        }
    }
}
