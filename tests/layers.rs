//! The modules of `src/` form layers that point one way (docs/ARCHITECTURE.md draws them): a
//! module imports only modules of its own layer or below, and no module imports one that imports
//! it back. Read from the source's `crate::` paths, so it stays true as the code changes.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Every top-level module of `src/` and its layer, lowest first. A new module must be added here,
/// in the layer it belongs to (and to docs/ARCHITECTURE.md).
const LAYERS: &[(u32, &[&str])] = &[
    // Leaves: the errors, the shared limits, the secure-URL rule, JSON reading, interruption
    // and the one way to wait.
    (
        0,
        &[
            "error",
            "auth_error",
            "limits",
            "url",
            "json",
            "request_id",
            "cancel",
        ],
    ),
    // The model of the resource, and the policies of the pipeline.
    (
        1,
        &[
            "datetime",
            "model",
            "patch",
            "target",
            "collection",
            "cloud",
            "retry",
            "pacing",
        ],
    ),
    // Where tokens come from, and how the network is reached.
    (
        2,
        &[
            "auth",
            "network",
            "resolver",
            "tls",
            "coalesce",
            "abortable",
        ],
    ),
    // The one request pipeline.
    (3, &["pipeline"]),
    // The operations and what their responses mean; bulk (the $batch wire format, the per-item
    // retry scheduler) and the rest of the resource beside the client.
    (
        4,
        &[
            "response",
            "client",
            "batch",
            "scheduler",
            "bulk",
            "resource",
        ],
    ),
    // The builder, and the durable outbox above the client (it sends through client operations).
    (5, &["config", "outbox"]),
    // The C ABI.
    (6, &["ffi"]),
    // The fuzz targets' entry points (tests and the `fuzzing` feature only): they drive the
    // parsers and the C ABI from above.
    (7, &["fuzzing"]),
];

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
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

/// The code of a file without its comment lines (doc links are not imports).
fn code(path: &Path) -> String {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .filter(|line| !line.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

fn ident(text: &str) -> &str {
    let end = text
        .find(|c: char| !(c.is_alphanumeric() || c == '_'))
        .unwrap_or(text.len());
    &text[..end]
}

/// The first segment of every path that follows `crate::`, braces expanded:
/// `use crate::{Error, auth::Tokens}` gives `Error` and `auth`.
fn crate_paths(code: &str) -> Vec<String> {
    let mut found = Vec::new();
    for (at, _) in code.match_indices("crate::") {
        let rest = &code[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let (mut depth, mut item_start, mut items) = (0, 0, Vec::new());
            for (i, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => {
                        items.push(&group[item_start..i]);
                        break;
                    }
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        items.push(&group[item_start..i]);
                        item_start = i + 1;
                    }
                    _ => {}
                }
            }
            found.extend(
                items
                    .iter()
                    .map(|item| ident(item.trim()).to_owned())
                    .filter(|name| !name.is_empty()),
            );
        } else {
            found.push(ident(rest).to_owned());
        }
    }
    found
}

/// lib.rs's modules, and which module each re-exported name comes from.
fn lib_rs() -> (BTreeSet<String>, BTreeMap<String, String>) {
    let lib = code(&src().join("lib.rs"));
    let mut modules = BTreeSet::new();
    let mut exports = BTreeMap::new();
    for statement in lib.split(';') {
        let last_line = statement.trim().lines().last().unwrap_or_default().trim();
        if let Some(pos) = statement.find("pub use ") {
            let path = &statement[pos + "pub use ".len()..];
            let (module, names) = path.split_once("::").expect("pub use module::...");
            let names = names.trim().trim_start_matches('{').trim_end_matches('}');
            for name in names.split(',').map(|name| ident(name.trim())) {
                if !name.is_empty() {
                    exports.insert(name.to_owned(), module.trim().to_owned());
                }
            }
        } else if let Some(name) = last_line
            .strip_prefix("mod ")
            .or_else(|| last_line.strip_prefix("pub mod "))
        {
            modules.insert(name.trim().to_owned());
        }
    }
    (modules, exports)
}

/// Top-level module -> the top-level modules it imports.
fn imports() -> BTreeMap<String, BTreeSet<String>> {
    let (modules, exports) = lib_rs();
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in files {
        let relative = file.strip_prefix(src()).unwrap();
        let first = relative.components().next().unwrap().as_os_str();
        let module = first.to_str().unwrap().trim_end_matches(".rs").to_owned();
        if module == "lib" {
            continue; // re-exports only
        }
        assert!(
            modules.contains(&module),
            "{relative:?} is not a module of lib.rs"
        );
        let imported = graph.entry(module.clone()).or_default();
        for name in crate_paths(&code(&file)) {
            let target = if modules.contains(&name) {
                name
            } else if let Some(module) = exports.get(&name) {
                module.clone()
            } else {
                panic!("{relative:?}: crate::{name} is neither a module nor a re-export of lib.rs");
            };
            if target != module {
                imported.insert(target);
            }
        }
    }
    graph
}

fn layer_of(module: &str) -> u32 {
    LAYERS
        .iter()
        .find(|(_, modules)| modules.contains(&module))
        .map(|(layer, _)| *layer)
        .unwrap_or_else(|| panic!("module `{module}` has no layer in tests/layers.rs"))
}

#[test]
fn imports_point_down_and_never_cycle() {
    let graph = imports();
    let (modules, _) = lib_rs();
    for module in &modules {
        layer_of(module);
    }
    let mut upward = Vec::new();
    for (module, imported) in &graph {
        for target in imported {
            if layer_of(target) > layer_of(module) {
                upward.push(format!(
                    "{module} (layer {}) imports {target} (layer {})",
                    layer_of(module),
                    layer_of(target)
                ));
            }
        }
    }
    assert!(upward.is_empty(), "upward imports:\n{}", upward.join("\n"));

    // Within a layer imports may go sideways, but never around in a circle.
    fn visit(
        module: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) {
        if let Some(start) = path.iter().position(|m| m == module) {
            panic!("import cycle: {} -> {module}", path[start..].join(" -> "));
        }
        if !done.insert(module.to_owned()) {
            return;
        }
        path.push(module.to_owned());
        for next in graph.get(module).into_iter().flatten() {
            visit(next, graph, path, done);
        }
        path.pop();
    }
    let mut done = BTreeSet::new();
    for module in graph.keys() {
        visit(module, &graph, &mut Vec::new(), &mut done);
    }
}

/// The module directories whose files are checked for circles among themselves (imports of
/// `super::x`, `crate::dir::x` and, from `mod.rs`, `x::`): the C layer's plumbing must stay a
/// one-way stack too (error.rs and strings.rs once imported each other).
const CHECKED_DIRS: &[&str] = &["ffi"];

/// The first segment after each `prefix` in `code`, braces expanded as [`crate_paths`] does.
fn paths_after(code: &str, prefix: &str) -> Vec<String> {
    crate_paths(&code.replace(prefix, "crate::"))
}

/// File (without `.rs`; `mod` for `mod.rs`) -> the files of the same directory it imports.
fn sibling_imports(dir: &str) -> BTreeMap<String, BTreeSet<String>> {
    let mut files = Vec::new();
    rust_files(&src().join(dir), &mut files);
    let names: BTreeSet<String> = files
        .iter()
        .map(|file| file.file_stem().unwrap().to_str().unwrap().to_owned())
        .collect();
    let mut graph = BTreeMap::new();
    for file in &files {
        let name = file.file_stem().unwrap().to_str().unwrap().to_owned();
        // `crate::` paths are only scanned for `crate::{dir}::`, so the prefixes never mix.
        let code = code(file).replace("crate::", "crate_::");
        let mut found = paths_after(&code, &format!("crate_::{dir}::"));
        if name == "mod" {
            // The children a module root uses by name (not those it only declares).
            for child in &names {
                let used = code.match_indices(&format!("{child}::")).any(|(at, _)| {
                    !code[..at].ends_with(|c: char| c.is_alphanumeric() || c == '_' || c == ':')
                });
                if used {
                    found.push(child.clone());
                }
            }
        } else {
            found.extend(paths_after(&code, "super::"));
        }
        let imported: BTreeSet<String> = found
            .into_iter()
            .filter(|target| *target != name)
            // `super::Item` of the parent's own items is an import of the parent.
            .map(|target| {
                if names.contains(&target) {
                    target
                } else {
                    "mod".to_owned()
                }
            })
            .filter(|target| names.contains(target))
            .collect();
        graph.insert(name, imported);
    }
    graph
}

/// Every circle in `graph`, as `a -> b -> a`.
fn circles(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<String> {
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
        found: &mut Vec<String>,
    ) {
        if let Some(start) = path.iter().position(|m| m == node) {
            found.push(format!("{} -> {node}", path[start..].join(" -> ")));
            return;
        }
        if done.contains(node) {
            return;
        }
        path.push(node.to_owned());
        for next in graph.get(node).into_iter().flatten() {
            visit(next, graph, path, done, found);
        }
        path.pop();
        done.insert(node.to_owned());
    }
    let mut found = Vec::new();
    let mut done = BTreeSet::new();
    for node in graph.keys() {
        visit(node, graph, &mut Vec::new(), &mut done, &mut found);
    }
    found
}

#[test]
fn files_of_a_module_never_import_each_other_in_a_circle() {
    for dir in CHECKED_DIRS {
        let graph = sibling_imports(dir);
        assert!(graph.len() > 1, "src/{dir}/ has its files");
        let found = circles(&graph);
        assert!(
            found.is_empty(),
            "import circles in src/{dir}/:\n{}",
            found.join("\n")
        );
    }
}

#[test]
fn the_circle_check_finds_a_circle_through_a_module_root() {
    let graph: BTreeMap<String, BTreeSet<String>> = [
        ("mod", &["store"][..]),
        ("store", &["schema"][..]),
        ("schema", &["mod"][..]),
        ("lock", &[][..]),
    ]
    .into_iter()
    .map(|(name, to)| {
        (
            name.to_owned(),
            to.iter().map(|t| (*t).to_owned()).collect(),
        )
    })
    .collect();
    assert_eq!(circles(&graph), ["mod -> store -> schema -> mod"]);
    let found = paths_after("use super::{error::FfiError, strings};", "super::");
    assert_eq!(found, ["error", "strings"]);
}

#[test]
fn the_reader_finds_grouped_and_inline_paths() {
    let found = crate_paths(
        "use crate::{Error, auth::{Tokens, X}, pipeline::Budget};\nlet d = crate::limits::MAX;",
    );
    assert_eq!(found, ["Error", "auth", "pipeline", "limits"]);
}
