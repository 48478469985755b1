//! The modules of `src/` form layers that point one way (docs/ARCHITECTURE.md draws them): a
//! module imports only modules of its own layer or below, and no module imports one that imports
//! it back. Read from the source's `crate::` paths, so it stays true as the code changes.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Every top-level module of `src/` and its layer, lowest first. A new module must be added here,
/// in the layer it belongs to (and to docs/ARCHITECTURE.md).
const LAYERS: &[(u32, &[&str])] = &[
    // Leaves: the errors and their JSON, the shared limits, the secure-URL rule, JSON reading,
    // interruption and the one way to wait, the metrics' counters.
    (
        0,
        &[
            "error",
            "error_json",
            "auth_error",
            "limits",
            "url",
            "json",
            "request_id",
            "cancel",
            "departure",
            "metrics",
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
            "tcp",
            "readiness",
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
    // The builder and config JSON, and the durable outbox above the client (it sends through
    // client operations) with the JSON of its answers.
    (5, &["config", "config_json", "outbox", "outbox_json"]),
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
        for name in crate_paths(&without_test_modules(&code(&file))) {
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
    let found = circles(&graph);
    assert!(found.is_empty(), "import cycles: {found:#?}");
}

#[test]
fn test_modules_make_no_layer_depend_on_another() {
    let code = "use crate::a;\n#[cfg(test)]\nmod tests {\n use crate::Client; fn f() { {} }\n}\nuse crate::b;";
    assert_eq!(crate_paths(&without_test_modules(code)), ["a", "b"]);
}

#[test]
fn the_reader_finds_grouped_and_inline_paths() {
    let found = crate_paths(
        "use crate::{Error, auth::{Tokens, X}, pipeline::Budget};\nlet d = crate::limits::MAX;",
    );
    assert_eq!(found, ["Error", "auth", "pipeline", "limits"]);
}

/// Circles this test knows about and tolerates until they are removed (then the entry must go:
/// the test fails on an entry whose circle is gone). None today.
const KNOWN_CIRCLES: &[&str] = &[];

/// The path of a `pub use` or `pub(crate) use` statement (attributes before it allowed).
fn reexport_of(statement: &str) -> Option<String> {
    let lines: Vec<&str> = statement
        .trim()
        .lines()
        .skip_while(|line| line.trim_start().starts_with("#["))
        .collect();
    let text = lines.join("\n");
    let text = text.trim_start();
    text.strip_prefix("pub use ")
        .or_else(|| text.strip_prefix("pub(crate) use "))
        .map(|path| path.trim().to_owned())
}

/// `code` without its `#[cfg(test)]` modules: a unit test may drive its module through the whole
/// crate (a `Client`), which makes no layer depend on another.
fn without_test_modules(code: &str) -> String {
    const MARK: &str = "#[cfg(test)]";
    let mut out = String::with_capacity(code.len());
    let mut rest = code;
    while let Some(at) = rest.find(MARK) {
        out.push_str(&rest[..at]);
        let after = &rest[at + MARK.len()..];
        let Some(open) = after
            .trim_start()
            .starts_with("mod ")
            .then(|| after.find('{'))
            .flatten()
        else {
            out.push_str(MARK);
            rest = after;
            continue;
        };
        let mut depth = 0;
        let mut end = after.len();
        for (i, c) in after[open..].char_indices() {
            match c {
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        end = open + i + 1;
                        break;
                    }
                }
                _ => {}
            }
        }
        rest = &after[end..];
    }
    out.push_str(rest);
    out
}

/// `code` without the bodies of modules written inside it (`mod tests { ... }`), where `super::`
/// names the file's own module, not its parent.
fn without_inline_modules(code: &str) -> String {
    let mut out = String::with_capacity(code.len());
    let mut rest = code;
    while let Some(at) = rest.find("mod ") {
        let (before, after) = rest.split_at(at);
        out.push_str(before);
        let name_end = 4 + ident(&after[4..]).len();
        let opens = name_end > 4 && after[name_end..].trim_start().starts_with('{');
        if !opens {
            out.push_str(&after[..name_end.max(4)]);
            rest = &after[name_end.max(4)..];
            continue;
        }
        let mut depth = 0;
        let mut end = after.len();
        for (i, c) in after.char_indices() {
            match c {
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        end = i + 1;
                        break;
                    }
                }
                _ => {}
            }
        }
        rest = &after[end..];
    }
    out.push_str(rest);
    out
}

/// `mod.rs`'s re-exports: item name -> the child module it comes from.
fn reexports(mod_rs: &str, children: &BTreeSet<String>) -> BTreeMap<String, String> {
    let mut found = BTreeMap::new();
    for statement in mod_rs.split(';') {
        let Some(path) = reexport_of(statement) else {
            continue;
        };
        let path = path.trim_start_matches("self::");
        let Some((child, names)) = path.split_once("::") else {
            continue;
        };
        if !children.contains(child) {
            continue;
        }
        for name in names
            .trim()
            .trim_start_matches('{')
            .trim_end_matches('}')
            .split(',')
        {
            let name = ident(name.trim());
            if !name.is_empty() {
                found.insert(name.to_owned(), child.to_owned());
            }
        }
    }
    found
}

/// The first segment of every path after `prefix` (braces expanded), as [`crate_paths`] reads
/// `crate::`, but only where `prefix` starts an identifier path (`super::x`, not `a_super::x`).
fn paths_after(code: &str, prefix: &str) -> Vec<String> {
    let mut found = Vec::new();
    for (at, _) in code.match_indices(prefix) {
        let before = code[..at].chars().next_back();
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
            continue;
        }
        // This path only: the code after it may hold `crate::` paths of its own.
        let tail = &code[at + prefix.len()..];
        let tail = tail.find("crate::").map_or(tail, |end| &tail[..end]);
        found.extend(crate_paths(&format!("crate::{tail}")));
    }
    found
}

/// The module graph inside the folder module `dir`: `mod` (its mod.rs) and each child file, an
/// edge for every use of another (a child naming the parent's items through `super::`, through
/// `crate::` and the folder, or through a re-export of lib.rs; the parent naming a child's path).
/// A re-export in mod.rs is a facade, not a use: an item re-exported from a child counts as the
/// child's.
fn folder_graph(dir: &str) -> BTreeMap<String, BTreeSet<String>> {
    let folder = src().join(dir);
    let children: BTreeSet<String> = std::fs::read_dir(&folder)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "rs"))
        .map(|path| path.file_stem().unwrap().to_str().unwrap().to_owned())
        .filter(|name| name != "mod")
        .collect();
    let mod_rs = code(&folder.join("mod.rs"));
    let reexported = reexports(&mod_rs, &children);
    let (_, lib_exports) = lib_rs();
    let resolve = |name: &str| -> String {
        if children.contains(name) {
            name.to_owned()
        } else {
            reexported
                .get(name)
                .cloned()
                .unwrap_or_else(|| "mod".to_owned())
        }
    };
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    // The parent: every child path it names outside its re-exports.
    let uses: String = mod_rs
        .split(';')
        .filter(|statement| reexport_of(statement).is_none())
        .collect::<Vec<_>>()
        .join(";");
    let mut parent_uses: BTreeSet<String> = paths_after(&uses, "self::").into_iter().collect();
    for child in &children {
        if !paths_after(&uses, &format!("{child}::")).is_empty() || parent_uses.contains(child) {
            parent_uses.insert(child.clone());
        }
    }
    // An item the parent re-exports from a child and also uses itself is a use of that child.
    for (name, child) in &reexported {
        if names_word(&uses, name) {
            parent_uses.insert(child.clone());
        }
    }
    parent_uses.retain(|name| children.contains(name));
    graph.insert("mod".into(), parent_uses);
    for child in &children {
        let text = without_inline_modules(&code(&folder.join(format!("{child}.rs"))));
        let mut names = paths_after(&text, "super::");
        names.extend(paths_after(&text, &format!("crate::{dir}::")));
        for name in crate_paths(&text) {
            if lib_exports.get(&name).is_some_and(|module| module == dir) {
                names.push(name);
            }
        }
        let edges = graph.entry(child.clone()).or_default();
        for name in names.into_iter().filter(|name| !name.is_empty()) {
            let target = resolve(&name);
            if &target != child {
                edges.insert(target);
            }
        }
    }
    graph
}

/// Whether `code` names `word` as a whole identifier (not `a_word`, `word_b` or `x::word`'s tail
/// of another path: any whole-word use counts).
fn names_word(code: &str, word: &str) -> bool {
    let is_ident = |c: char| c.is_alphanumeric() || c == '_';
    code.match_indices(word).any(|(at, _)| {
        !code[..at].ends_with(is_ident) && !code[at + word.len()..].starts_with(is_ident)
    })
}

/// The circles in `graph` a depth-first walk meets (at least one in every knot of modules that
/// import each other), each as `a -> b -> a`, starting from its smallest module.
fn circles(graph: &BTreeMap<String, BTreeSet<String>>) -> BTreeSet<String> {
    fn walk(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
        found: &mut BTreeSet<String>,
    ) {
        if let Some(start) = path.iter().position(|n| n == node) {
            let mut circle = path[start..].to_vec();
            let smallest = (0..circle.len()).min_by_key(|&i| &circle[i]).unwrap();
            circle.rotate_left(smallest);
            circle.push(circle[0].clone());
            found.insert(circle.join(" -> "));
            return;
        }
        if done.contains(node) {
            return;
        }
        path.push(node.to_owned());
        for next in graph.get(node).into_iter().flatten() {
            walk(next, graph, path, done, found);
        }
        path.pop();
        done.insert(node.to_owned());
    }
    let mut found = BTreeSet::new();
    let mut done = BTreeSet::new();
    for node in graph.keys() {
        walk(node, graph, &mut Vec::new(), &mut done, &mut found);
    }
    found
}

#[test]
fn inside_a_folder_module_no_child_imports_its_parent_or_a_sibling_in_a_circle() {
    let mut found = BTreeSet::new();
    for entry in std::fs::read_dir(src()).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() && path.join("mod.rs").exists() {
            let dir = path.file_name().unwrap().to_str().unwrap().to_owned();
            for circle in circles(&folder_graph(&dir)) {
                found.insert(format!("{dir}: {circle}"));
            }
        }
    }
    let known: BTreeSet<String> = KNOWN_CIRCLES.iter().map(|c| (*c).to_owned()).collect();
    let new: Vec<_> = found.difference(&known).collect();
    assert!(
        new.is_empty(),
        "import circles inside a folder module: {new:#?}"
    );
    let gone: Vec<_> = known.difference(&found).collect();
    assert!(
        gone.is_empty(),
        "these circles are gone: remove them from KNOWN_CIRCLES: {gone:?}"
    );
}

#[test]
fn the_folder_reader_sees_a_child_importing_its_parent() {
    let graph = folder_graph("outbox");
    // The parent uses its children; they do not use it back.
    assert!(graph["mod"].contains("store") && graph["mod"].contains("flush"));
    assert!(!graph["store"].contains("mod"), "{:?}", graph["store"]);
    // A child naming an item its parent re-exports from a sibling points at that sibling.
    assert!(graph["flush"].contains("options"), "{:?}", graph["flush"]);
    // The parent using an item it re-exports from a child (auth's `Tokens` holds a `Credential`)
    // uses that child.
    let auth = folder_graph("auth");
    assert!(auth["mod"].contains("credentials"), "{:?}", auth["mod"]);
    assert!(
        !auth["mod"].contains("cache"),
        "a re-export alone is no use"
    );
    let mut circle = BTreeMap::new();
    circle.insert("mod".to_owned(), BTreeSet::from(["a".to_owned()]));
    circle.insert("a".to_owned(), BTreeSet::from(["mod".to_owned()]));
    assert_eq!(
        circles(&circle),
        BTreeSet::from(["a -> mod -> a".to_owned()])
    );
    assert_eq!(
        paths_after("use super::{x, y::Z}; a_super::q; super::w", "super::"),
        ["x", "y", "w"]
    );
    // A group's items only, not the paths of the code after it.
    assert_eq!(
        paths_after(
            "use crate::auth::{A, B};\nuse crate::limits::MAX;",
            "crate::auth::"
        ),
        ["A", "B"]
    );
    assert_eq!(
        without_inline_modules("use super::a;\nmod tests {\n use super::*; fn f() {}\n}\nmod b;"),
        "use super::a;\n\nmod b;"
    );
}
