//! The checked-in C header must be exactly what the pinned cbindgen generates from `src/ffi/`.
//!
//! Regenerate it with `IUS_BLESS=1 cargo test --test c_header`. The version macros
//! (`IUS_VERSION_MAJOR` ..) come from `Cargo.toml`, so a version bump needs a regeneration too.

use std::path::Path;

const HEADER: &str = "include/intune_user_status.h";
const REGENERATE: &str = "IUS_BLESS=1 cargo test --test c_header";

/// The header's version macros: the version of `Cargo.toml` it was generated from.
fn version_macros() -> String {
    format!(
        "\n/* The version this header belongs to (from Cargo.toml); ius_version() gives the loaded\n \
         * library's at run time. See docs/abi.md. */\n\
         #define IUS_VERSION_MAJOR {}\n\
         #define IUS_VERSION_MINOR {}\n\
         #define IUS_VERSION_PATCH {}\n\
         #define IUS_VERSION_STRING \"{}\"",
        env!("CARGO_PKG_VERSION_MAJOR"),
        env!("CARGO_PKG_VERSION_MINOR"),
        env!("CARGO_PKG_VERSION_PATCH"),
        env!("CARGO_PKG_VERSION"),
    )
}

fn generate() -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut config =
        cbindgen::Config::from_file(root.join("cbindgen.toml")).expect("cbindgen.toml");
    config.after_includes = Some(version_macros());
    let bindings = cbindgen::Builder::new()
        .with_config(config)
        .with_src(root.join("src/lib.rs"))
        .generate()
        .expect("cbindgen could not generate the header");
    let mut out = Vec::new();
    bindings.write(&mut out);
    String::from_utf8(out).expect("the header is UTF-8")
}

#[test]
fn header_is_up_to_date() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(HEADER);
    let generated = generate();
    if std::env::var_os("IUS_BLESS").is_some() {
        std::fs::write(&path, &generated).expect("write the header");
        return;
    }
    let current = std::fs::read_to_string(&path).unwrap_or_default();
    if current != generated {
        let line = current
            .lines()
            .zip(generated.lines())
            .position(|(a, b)| a != b)
            .map_or_else(|| "(length)".to_owned(), |n| (n + 1).to_string());
        panic!(
            "{HEADER} is out of date with src/ffi/ (first difference at line {line}).\n\
             Regenerate it with:\n\n    {REGENERATE}\n"
        );
    }
}

#[test]
fn header_declares_the_whole_api_with_explicit_status_values() {
    let header = generate();
    for decl in [
        "typedef struct ius_client ius_client;",
        "const char *ius_version(void);",
        "void ius_client_free(ius_client *client);",
        "void ius_string_free(char *s);",
        "const char *ius_status_name(ius_status status);",
        "IUS_STATUS_OK = 0,",
        "IUS_STATUS_NULL_ARGUMENT = 1,",
        "IUS_STATUS_CONFIG = 5,",
        "IUS_STATUS_LOGGER_IN_USE = 6,",
        "IUS_STATUS_OUTBOX_FULL = 7,",
        "IUS_STATUS_STORAGE = 8,",
        "typedef struct ius_outbox ius_outbox;",
        "void ius_outbox_free(ius_outbox *outbox);",
        "IUS_LOG_LEVEL_ERROR = 1,",
        "IUS_LOG_LEVEL_TRACE = 5,",
        "typedef uint32_t ius_log_level;",
        "typedef int32_t (*ius_token_callback)(void *user_data,",
        "typedef void (*ius_log_callback)(void *user_data,",
        "IUS_STATUS_AUTH = 100,",
        "IUS_STATUS_THROTTLED = 102,",
        "IUS_STATUS_PANIC = 200,",
        "typedef uint32_t ius_status;",
        "#include <stdbool.h>",
        concat!(
            "#define IUS_VERSION_STRING \"",
            env!("CARGO_PKG_VERSION"),
            "\""
        ),
        "Do not edit",
    ] {
        assert!(header.contains(decl), "missing `{decl}` in:\n{header}");
    }
    for function in [
        "ius_client_new(",
        "ius_update_user_status(",
        "ius_update_user_status_at(",
        "ius_client_new_with_token_callback(",
        "ius_set_log_callback(",
        "ius_outbox_open(",
        "ius_outbox_enqueue(",
        "ius_outbox_enqueue_many(",
        "ius_outbox_flush(",
        "ius_outbox_stats(",
        "ius_outbox_take_failed(",
    ] {
        assert!(
            header.contains(&format!("ius_status {function}")),
            "{function}"
        );
    }
    assert!(
        !header.contains("ius_status_value") && !header.contains("ius_log_level_value"),
        "the raw alias leaked into the header"
    );
    assert!(
        !header.contains("ODATA_TYPE"),
        "Rust constants leaked into the header"
    );
    // Only the C API's own types: a new public Rust type must not appear as a stray opaque type.
    let mut types: Vec<_> = header
        .lines()
        .filter(|line| line.starts_with("typedef"))
        .map(|line| match line.split_once("(*") {
            // A function pointer: `typedef R (*name)(args...`.
            Some((_, rest)) => rest.split(')').next().unwrap_or_default(),
            None => line
                .trim_end_matches(';')
                .rsplit(' ')
                .next()
                .unwrap_or_default(),
        })
        .collect();
    types.dedup();
    assert_eq!(
        types,
        [
            "ius_status",
            "ius_log_level",
            "ius_client",
            "ius_outbox",
            "ius_token_callback",
            "ius_log_callback"
        ],
        "unexpected types in the header"
    );
}

/// The C quick start (in README.md) and the C++ one (in docs/c-api.md) are the files
/// `tests/c_api.rs` compiles, word for word.
#[test]
fn readme_quick_starts_are_the_compiled_files() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for (page, fence, file) in [
        ("README.md", "```c\n", "bindings-c/quickstart/quickstart.c"),
        (
            "docs/c-api.md",
            "```cpp\n",
            "bindings-c/quickstart/quickstart.cpp",
        ),
    ] {
        let text = std::fs::read_to_string(root.join(page)).unwrap();
        let code = std::fs::read_to_string(root.join(file)).unwrap();
        assert!(
            text.contains(&format!("{fence}{code}```")),
            "{page}'s quick start differs from {file}; copy the file into {page}"
        );
    }
}
