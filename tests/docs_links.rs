//! The Markdown pages hold together: every relative link in README.md, SECURITY.md and docs/*.md
//! names a file that exists, every `#anchor` a heading of its page (by GitHub's rules for heading
//! ids), and every page with Rust code blocks is in src/lib.rs's `doc_tests!` table, so its
//! examples are compiled.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The pages checked: the README, SECURITY.md and every guide in docs/.
fn pages() -> Vec<PathBuf> {
    let mut pages = vec![root().join("README.md"), root().join("SECURITY.md")];
    for entry in std::fs::read_dir(root().join("docs")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "md") {
            pages.push(path);
        }
    }
    pages.sort();
    pages
}

/// The lines of a page outside fenced code blocks, with their line numbers.
fn prose(text: &str) -> Vec<(usize, &str)> {
    let mut fenced = false;
    let mut lines = Vec::new();
    for (number, line) in text.lines().enumerate() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
        } else if !fenced {
            lines.push((number + 1, line));
        }
    }
    lines
}

/// A line without its code spans (`...`), whose text is not Markdown.
fn without_code_spans(line: &str) -> String {
    line.split('`')
        .enumerate()
        .filter(|(i, _)| i % 2 == 0)
        .map(|(_, part)| part)
        .collect::<Vec<_>>()
        .join(" ")
}

/// The targets of a line's inline links, `[text](target)`, and of a reference definition,
/// `[name]: target`.
fn link_targets(line: &str) -> Vec<String> {
    let line = without_code_spans(line);
    let mut targets = Vec::new();
    let mut rest = line.as_str();
    while let Some(at) = rest.find("](") {
        let after = &rest[at + 2..];
        let end = after.find(')').unwrap_or(after.len());
        // A title after the target ("[a](b "title")") is not part of it.
        let target = after[..end].split_whitespace().next().unwrap_or_default();
        targets.push(target.to_owned());
        rest = &after[end..];
    }
    let trimmed = line.trim_start();
    if let Some(definition) = trimmed.strip_prefix('[')
        && let Some((_, target)) = definition.split_once("]:")
    {
        targets.extend(target.split_whitespace().next().map(str::to_owned));
    }
    targets
}

/// GitHub's id for a heading's text: links reduced to their text, lowercased, every character
/// but letters, digits, '-', '_' and spaces dropped, spaces turned into '-'.
fn slug(heading: &str) -> String {
    let mut text = String::new();
    let mut rest = heading;
    // [text](target) -> text
    while let Some(open) = rest.find('[') {
        let Some(close) = rest[open..].find("](").map(|i| open + i) else {
            break;
        };
        let Some(end) = rest[close..].find(')').map(|i| close + i) else {
            break;
        };
        text.push_str(&rest[..open]);
        text.push_str(&rest[open + 1..close]);
        rest = &rest[end + 1..];
    }
    text.push_str(rest);
    text.trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

/// The ids of a page's headings, a repeated one numbered as GitHub numbers it (`x`, `x-1`, ...).
fn anchors(text: &str) -> Vec<String> {
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let mut ids = Vec::new();
    for (_, line) in prose(text) {
        let hashes = line.chars().take_while(|&c| c == '#').count();
        let Some(title) = line[hashes..].strip_prefix(' ') else {
            continue;
        };
        if !(1..=6).contains(&hashes) {
            continue;
        }
        let id = slug(title.trim().trim_end_matches('#'));
        let count = seen.entry(id.clone()).or_insert(0);
        ids.push(if *count == 0 {
            id.clone()
        } else {
            format!("{id}-{count}")
        });
        *count += 1;
    }
    ids
}

/// What is wrong with the relative links of `page`, whose text is `text`: one message per link.
fn broken_links(page: &Path, text: &str) -> Vec<String> {
    let name = page
        .strip_prefix(root())
        .unwrap_or(page)
        .display()
        .to_string();
    let mut problems = Vec::new();
    for (number, line) in prose(text) {
        for target in link_targets(line) {
            if target.contains("://") || target.starts_with("mailto:") || target.is_empty() {
                continue;
            }
            let (path, anchor) = match target.split_once('#') {
                Some((path, anchor)) => (path, Some(anchor)),
                None => (target.as_str(), None),
            };
            if path.is_empty() {
                // An anchor into this page.
                if let Some(anchor) = anchor {
                    let headings = anchors(text);
                    if !headings.iter().any(|id| id == anchor) {
                        problems.push(format!(
                            "{name}:{number}: {target}: no heading #{anchor} in this page; it has: {}",
                            headings.join(", ")
                        ));
                    }
                }
                continue;
            }
            let file = page.parent().unwrap().join(path);
            if !file.exists() {
                problems.push(format!(
                    "{name}:{number}: {target}: no file {}",
                    file.display()
                ));
                continue;
            }
            let Some(anchor) = anchor else { continue };
            let headings = match std::fs::read_to_string(&file) {
                Ok(linked) if file.extension().is_some_and(|e| e == "md") => anchors(&linked),
                _ => {
                    problems.push(format!(
                        "{name}:{number}: {target}: an anchor into a file that is not Markdown"
                    ));
                    continue;
                }
            };
            if !headings.iter().any(|id| id == anchor) {
                problems.push(format!(
                    "{name}:{number}: {target}: no heading #{anchor} in {path}; it has: {}",
                    headings.join(", ")
                ));
            }
        }
    }
    problems
}

#[test]
fn every_relative_link_and_anchor_resolves() {
    let mut problems = Vec::new();
    for page in pages() {
        let text = std::fs::read_to_string(&page).unwrap();
        problems.extend(broken_links(&page, &text));
    }
    assert!(
        problems.is_empty(),
        "broken links:\n{}",
        problems.join("\n")
    );
}

#[test]
fn every_page_with_rust_examples_is_compiled_by_doc_tests() {
    let lib = std::fs::read_to_string(root().join("src/lib.rs")).unwrap();
    let table = lib
        .split_once("doc_tests! {")
        .expect("src/lib.rs declares its doc_tests! table")
        .1;
    let table = &table[..table.find('}').unwrap()];
    for page in pages() {
        let text = std::fs::read_to_string(&page).unwrap();
        // With '/' on Windows too, as src/lib.rs names the pages.
        let relative = page
            .strip_prefix(root())
            .unwrap()
            .components()
            .map(|part| part.as_os_str().to_string_lossy())
            .collect::<Vec<_>>()
            .join("/");
        let listed = table.contains(&format!("\"../{relative}\""));
        let has_rust = text.lines().any(|line| line.starts_with("```rust"));
        assert_eq!(
            listed, has_rust,
            "{relative}: Rust code blocks: {has_rust}, in src/lib.rs's doc_tests! table: {listed}"
        );
    }
}

#[test]
fn a_missing_file_and_a_missing_heading_are_reported() {
    let page = root().join("docs").join("example.md");
    let text = "# Title\n\n## Two words\n\n\
                [ok](../README.md) [ok](#two-words) [ok](https://example.com/x#y)\n\
                [bad](missing.md) [bad](#no-such-heading) [bad](../README.md#nowhere)\n\
                ```sh\n[in code](not-checked.md)\n```\n`[in a span](not-checked.md)`\n";
    let problems = broken_links(&page, text);
    assert_eq!(problems.len(), 3, "{problems:#?}");
    assert!(
        problems[0].contains("missing.md: no file"),
        "{}",
        problems[0]
    );
    assert!(
        problems[1].contains("no heading #no-such-heading"),
        "{}",
        problems[1]
    );
    assert!(
        problems[2].contains("no heading #nowhere"),
        "{}",
        problems[2]
    );
}

#[test]
fn headings_get_github_ids() {
    let cases = [
        ("The `ius` command", "the-ius-command"),
        ("C and C++", "c-and-c"),
        ("204 No Content", "204-no-content"),
        (
            "Robustness: fuzzing, soak, threat model",
            "robustness-fuzzing-soak-threat-model",
        ),
        ("Looking at an agent's file", "looking-at-an-agents-file"),
        ("snake_case and kebab-case", "snake_case-and-kebab-case"),
        ("See [the guide](docs/x.md)", "see-the-guide"),
    ];
    for (heading, id) in cases {
        assert_eq!(slug(heading), id, "{heading}");
    }
    assert_eq!(
        anchors("# A\n## A\n```sh\n# not a heading\n```\n#not one either\n### A\n"),
        ["a", "a-1", "a-2"]
    );
}
