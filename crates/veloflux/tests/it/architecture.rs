//! The dependency rules of ARCHITECTURE.md, checked against `cargo metadata`.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

use serde_json::Value;

/// Each workspace crate and its normal (non-dev) dependencies.
fn dependencies() -> BTreeMap<String, BTreeSet<String>> {
    let output = Command::new(env!("CARGO"))
        .args(["metadata", "--format-version", "1", "--no-deps", "--offline"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("running cargo metadata");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let metadata: Value = serde_json::from_slice(&output.stdout).unwrap();
    metadata["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|package| {
            let deps = package["dependencies"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|d| d["kind"].is_null())
                .map(|d| d["name"].as_str().unwrap().to_owned())
                .collect();
            (package["name"].as_str().unwrap().to_owned(), deps)
        })
        .collect()
}

#[test]
fn crates_depend_only_on_what_the_architecture_allows() {
    let deps = dependencies();
    let forbidden: &[(&str, &[&str])] = &[
        // The domain is pure: no IO, no serialization or web frameworks.
        (
            "veloflux-domain",
            &[
                "serde",
                "sqlx",
                "axum",
                "tokio",
                "hyper",
                "veloflux-store",
                "veloflux-api",
            ],
        ),
        // The store knows nothing of HTTP or of the crates above it.
        (
            "veloflux-store",
            &["axum", "hyper", "veloflux-api", "veloflux-identity", "figment", "clap"],
        ),
        // The shared API layer never depends on a feature crate.
        ("veloflux-api", &["veloflux-identity", "figment", "clap"]),
        // Feature crates receive their configuration; only the binary reads it.
        ("veloflux-identity", &["figment", "clap"]),
        (
            "veloflux-routing",
            &["figment", "clap", "veloflux-identity", "veloflux-edge"],
        ),
        // The data plane never touches the database or the web framework.
        (
            "veloflux-edge",
            &["sqlx", "axum", "veloflux-store", "veloflux-api", "figment", "clap"],
        ),
        // Shared leaves: TLS and the event bus know nothing of storage, HTTP routing or features.
        (
            "veloflux-tls",
            &["sqlx", "axum", "hyper", "tokio", "veloflux-store", "veloflux-api"],
        ),
        (
            "veloflux-events",
            &[
                "sqlx",
                "axum",
                "hyper",
                "veloflux-store",
                "veloflux-api",
                "veloflux-edge",
            ],
        ),
    ];
    for (krate, banned) in forbidden {
        let actual = deps
            .get(*krate)
            .unwrap_or_else(|| panic!("{krate} is not in the workspace"));
        for name in *banned {
            assert!(!actual.contains(*name), "{krate} must not depend on {name}");
        }
    }
}

#[test]
fn only_the_binary_reads_the_environment_for_configuration() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut offenders = Vec::new();
    for krate in [
        "domain", "store", "api", "identity", "edge", "routing", "secrets", "tls", "events",
    ] {
        let mut stack = vec![root.join(krate).join("src")];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    stack.push(path);
                } else if std::fs::read_to_string(&path).unwrap().contains("env::var") {
                    offenders.push(path.display().to_string());
                }
            }
        }
    }
    assert!(
        offenders.is_empty(),
        "environment read outside the binary: {offenders:?}"
    );
}
