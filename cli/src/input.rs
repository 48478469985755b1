//! What `ius` reads besides its arguments: a JSON value given as itself, as `@FILE` or as `-`
//! (standard input), as curl's `-d` takes it; the config given as a file or as its JSON, which
//! is never echoed; and the byte order mark some editors put first, which is no part of the text.

use std::io::Read;
use std::path::Path;

use crate::exit::Failure;

/// The most a JSON value read from a file or standard input may hold (a patch, an entity,
/// options, a config): far more than any of them needs, and a bound on what a mistake reads.
const MAX_JSON: u64 = 1024 * 1024;

/// `text` without the UTF-8 byte order mark (U+FEFF) some editors write first.
pub fn strip_bom(text: &str) -> &str {
    text.strip_prefix('\u{feff}').unwrap_or(text)
}

/// The JSON argument `flag` (e.g. `--patch`) as given: `@FILE` reads the file, `-` standard input,
/// anything else is the JSON itself.
pub fn json_arg(flag: &str, value: &str) -> Result<String, Failure> {
    let text = if value == "-" {
        read_bounded(std::io::stdin().lock())
            .map_err(|err| Failure::usage(format!("{flag}: cannot read standard input: {err}")))?
    } else if let Some(file) = value.strip_prefix('@') {
        read_file(Path::new(file))
            .map_err(|err| Failure::usage(format!("{flag}: cannot read {file}: {err}")))?
    } else {
        value.to_owned()
    };
    Ok(strip_bom(&text).to_owned())
}

/// The config JSON from `--config` or `IUS_CONFIG` (`from`): the value itself when it holds a
/// `{`, else the file it names. The value may hold a secret, so no message shows it: only where
/// it came from and its length.
pub fn config_text(from: &str, value: &str) -> Result<String, Failure> {
    let value = strip_bom(value);
    if value.contains('{') {
        return Ok(value.to_owned());
    }
    let text = read_file(Path::new(value)).map_err(|err| {
        Failure::usage(format!(
            "{from}: the file it names ({} characters, not shown) cannot be read: {err}",
            value.chars().count()
        ))
    })?;
    Ok(strip_bom(&text).to_owned())
}

fn read_file(path: &Path) -> std::io::Result<String> {
    read_bounded(std::fs::File::open(path)?)
}

/// All of `reader` as UTF-8 text, refused past [`MAX_JSON`] bytes.
fn read_bounded(reader: impl Read) -> std::io::Result<String> {
    let mut text = String::new();
    reader.take(MAX_JSON + 1).read_to_string(&mut text)?;
    if text.len() as u64 > MAX_JSON {
        return Err(std::io::Error::other(format!(
            "more than {MAX_JSON} bytes; a JSON value here is far smaller"
        )));
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_config_is_json_when_it_holds_a_brace_and_never_shown_otherwise() {
        assert_eq!(
            config_text("--config", "\u{feff}{\"a\":1}").unwrap(),
            "{\"a\":1}"
        );
        assert_eq!(config_text("--config", "[{}]").unwrap(), "[{}]");
        let failure = config_text("IUS_CONFIG", "s3cr3t/no-such-file").unwrap_err();
        let shown = format!("{failure:?}");
        assert!(!shown.contains("s3cr3t"), "{shown}");
        assert!(
            shown.contains("IUS_CONFIG: the file it names (19 characters"),
            "{shown}"
        );
    }
}
