//! The crate graph in docs/architecture.md is the workspace's own, the ledger has no
//! wasmtime anywhere in its tree, and the kernel depends on no plugin kind's crate.

use crate::support::root;
use std::collections::BTreeSet;
use std::process::Command;

fn cargo(args: &[&str]) -> String {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo).current_dir(root()).args(args).output().expect("run cargo");
    assert!(out.status.success(), "cargo {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).expect("utf-8")
}

/// `(from, to)` for every normal dependency between workspace crates.
fn workspace_edges() -> BTreeSet<(String, String)> {
    let meta: serde_json::Value = serde_json::from_str(&cargo(&["metadata", "--format-version", "1", "--no-deps", "--offline"])).expect("metadata JSON");
    let packages = meta["packages"].as_array().expect("packages");
    let names: BTreeSet<&str> = packages.iter().filter_map(|p| p["name"].as_str()).collect();
    let mut edges = BTreeSet::new();
    for p in packages {
        let from = p["name"].as_str().expect("name");
        for d in p["dependencies"].as_array().expect("dependencies") {
            let to = d["name"].as_str().expect("dependency name");
            if names.contains(to) && d["kind"].is_null() {
                edges.insert((from.to_string(), to.to_string()));
            }
        }
    }
    edges
}

/// The `A --> B` lines of the mermaid graph under "## Crates".
fn documented_edges() -> BTreeSet<(String, String)> {
    let doc = std::fs::read_to_string(root().join("docs/architecture.md")).expect("docs/architecture.md");
    let graph = doc.split("```mermaid").nth(1).and_then(|g| g.split("```").next()).expect("a mermaid graph in docs/architecture.md");
    graph.lines().filter_map(|l| l.split_once("-->")).map(|(a, b)| (a.trim().to_string(), b.trim().to_string())).collect()
}

#[test]
fn the_documented_crate_graph_is_the_workspace_graph() {
    let (actual, documented) = (workspace_edges(), documented_edges());
    let missing: Vec<_> = actual.difference(&documented).collect();
    let stale: Vec<_> = documented.difference(&actual).collect();
    assert!(missing.is_empty() && stale.is_empty(), "docs/architecture.md's graph lacks {missing:?} and lists {stale:?}, which the workspace does not have");
}

#[test]
fn the_ledger_does_not_depend_on_wasm_and_the_kernel_on_no_kind() {
    let ledger = cargo(&["tree", "--offline", "-p", "joule-ledger", "-e", "normal", "--prefix", "none"]);
    assert!(!ledger.lines().any(|l| l.starts_with("wasmtime")), "joule-ledger's tree has wasmtime:\n{ledger}");
    let kernel = cargo(&["tree", "--offline", "-p", "joule-kernel", "-e", "normal", "--prefix", "none"]);
    for kind in ["joule-crypto", "joule-consensus", "joule-ledger", "joule-node"] {
        assert!(!kernel.lines().any(|l| l.starts_with(&format!("{kind} "))), "joule-kernel depends on {kind}:\n{kernel}");
    }
    // Its sources name no kind's types either.
    for entry in std::fs::read_dir(root().join("host/kernel/src")).expect("kernel sources") {
        let path = entry.expect("entry").path();
        let text = std::fs::read_to_string(&path).expect("source");
        for word in ["AlgorithmKind", "CryptoService", "ConsensusEngine", "EngineComponent", "joule:crypto", "joule:consensus"] {
            assert!(!text.contains(word), "{} names {word}", path.display());
        }
    }
}
