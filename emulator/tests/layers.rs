//! The modules of `emulator/src/` form layers that point one way (the crate
//! docs describe them): a module imports only modules of its own layer or
//! below, and none imports a module that imports it back. Read from the
//! source's `crate::` paths, so it stays true as the code changes.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Every module of `emulator/src/` (besides `lib` and `main`) and its
/// layer, lowest first. A new module must be added here.
const LAYERS: &[(u32, &[&str])] = &[
    // Leaves.
    (0, &["sync", "router", "tls"]),
    (1, &["log", "store", "federated"]),
    (2, &["message"]),
    (3, &["odata", "http1"]),
    // The HTTP server, the token endpoint, and the managed-identity
    // endpoints (which issue the token endpoint's tokens).
    (4, &["server", "identity", "managed_identity"]),
    // Faults, Graph, batching.
    (5, &["faults", "graph", "batch"]),
    (6, &["admin"]),
    // Records, applies faults, routes.
    (7, &["dispatch"]),
    // The command line, over the crate's public API.
    (8, &["command_line"]),
];

/// The top-level module a file belongs to (`graph/handlers.rs` is `graph`).
fn module_of(src: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(src).unwrap();
    let first = rel
        .components()
        .next()
        .unwrap()
        .as_os_str()
        .to_string_lossy();
    first.trim_end_matches(".rs").to_owned()
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The modules named right after `crate::` in `code` (comment lines
/// skipped, braces expanded one level: `use crate::{a::X, b}` gives a, b).
fn imports(code: &str) -> BTreeSet<String> {
    let ident = |s: &str| -> String {
        s.trim()
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect()
    };
    let code: String = code
        .lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n");
    let mut found = BTreeSet::new();
    for (at, _) in code.match_indices("crate::") {
        let rest = &code[at + "crate::".len()..];
        match rest.strip_prefix('{') {
            Some(group) => {
                let group = &group[..group.find('}').unwrap_or(group.len())];
                found.extend(group.split(',').map(ident));
            }
            None => {
                found.insert(ident(rest));
            }
        }
    }
    found.retain(|m| !m.is_empty());
    found
}

#[test]
fn emulator_modules_import_only_downwards_and_never_in_a_circle() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let layer: BTreeMap<&str, u32> = LAYERS
        .iter()
        .flat_map(|(n, mods)| mods.iter().map(move |m| (*m, *n)))
        .collect();
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in &files {
        let module = module_of(&src, file);
        if module == "lib" || module == "main" {
            continue;
        }
        assert!(
            layer.contains_key(module.as_str()),
            "module '{module}' is in no layer"
        );
        let code = std::fs::read_to_string(file).unwrap();
        let targets = edges.entry(module.clone()).or_default();
        for target in imports(&code) {
            // Items of the crate root (re-exports) are not modules.
            if target != module && layer.contains_key(target.as_str()) {
                targets.insert(target);
            }
        }
    }
    for (from, targets) in &edges {
        for to in targets {
            assert!(
                layer[to.as_str()] <= layer[from.as_str()],
                "'{from}' (layer {}) imports '{to}' (layer {}), which sits above it",
                layer[from.as_str()],
                layer[to.as_str()]
            );
        }
    }
    // Within a layer, no circle either.
    for start in edges.keys() {
        let mut seen = BTreeSet::new();
        let mut stack: Vec<&String> = edges[start].iter().collect();
        while let Some(m) = stack.pop() {
            assert!(m != start, "'{start}' imports itself back through '{m}'");
            if seen.insert(m) {
                stack.extend(edges.get(m).into_iter().flatten());
            }
        }
    }
    // The check reads real imports (a table that matched nothing would pass).
    assert!(edges["dispatch"].contains("graph") && edges["server"].contains("http1"));
}
