//! The core decides; it does no I/O. This test reads the core's resolved dependency
//! tree (normal dependencies only, features as built for this crate alone) and fails if
//! an HTTP, socket or Azure crate, or an I/O feature of tokio, has crept in.

use std::process::Command;

/// Crates that mean network or cloud I/O. A crate name matches when it equals an entry
/// or starts with an entry ending in `_` or `-`.
const FORBIDDEN: &[&str] = &[
    "reqwest",
    "hyper",
    "hyper-util",
    "h2",
    "axum",
    "tower",
    "tower-http",
    "tonic",
    "rustls",
    "native-tls",
    "openssl",
    "mio",
    "socket2",
    "azure_",
    "typespec",
    "prometheus-client",
    "tracing-subscriber",
    "figment",
];

/// tokio features that open sockets, files or processes.
const FORBIDDEN_TOKIO_FEATURES: &[&str] = &["net", "fs", "process", "io-std", "signal", "full"];

fn core_tree() -> Vec<(String, Vec<String>)> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let output = Command::new(cargo)
        .args([
            "tree",
            "-p",
            "operator-core",
            "-e",
            "normal",
            "--prefix",
            "none",
            "-f",
            "{p}|{f}",
            "--locked",
            "--offline",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo tree runs");
    assert!(output.status.success(), "cargo tree failed: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout)
        .expect("utf-8")
        .lines()
        .filter_map(|line| {
            let (package, features) = line.split_once('|')?;
            let name = package.split_whitespace().next()?.to_owned();
            let features = features.split(',').map(str::trim).filter(|f| !f.is_empty()).map(String::from).collect();
            Some((name, features))
        })
        .collect()
}

fn is_forbidden(name: &str) -> bool {
    FORBIDDEN.iter().any(|f| name == *f || ((f.ends_with('_') || f.ends_with('-')) && name.starts_with(f)))
}

#[test]
fn the_core_depends_on_no_http_socket_or_azure_crate() {
    let tree = core_tree();
    assert!(tree.iter().any(|(name, _)| name == "operator-core"), "the tree lists the core itself: {tree:?}");
    let bad: Vec<&String> = tree.iter().map(|(name, _)| name).filter(|name| is_forbidden(name)).collect();
    assert!(bad.is_empty(), "operator-core must not depend on {bad:?}: move that code to the operator crate");
}

#[test]
fn the_core_uses_tokio_for_its_clock_only() {
    for (name, features) in core_tree().iter().filter(|(name, _)| name == "tokio") {
        let bad: Vec<&String> = features.iter().filter(|f| FORBIDDEN_TOKIO_FEATURES.contains(&f.as_str())).collect();
        assert!(bad.is_empty(), "{name} is built with I/O features {bad:?} for the core");
    }
}

#[test]
fn the_checker_recognises_what_it_forbids() {
    assert!(is_forbidden("reqwest"));
    assert!(is_forbidden("azure_core"));
    assert!(is_forbidden("hyper-util"));
    assert!(!is_forbidden("serde"));
    assert!(!is_forbidden("towering"));
}
