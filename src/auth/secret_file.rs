//! A small file that holds a secret (Azure Arc's key, a platform's federated token): read within
//! a bound, as text, trimmed, and refused when empty. What it holds never goes into an error.

use std::fmt;
use std::io::{self, Read};

use zeroize::Zeroizing;

/// Why a secret file could not be used. Its `Display` completes "the ... file {path} ".
#[derive(Debug)]
pub(crate) enum Unusable {
    /// Opening or reading it failed.
    Read(io::Error),
    /// It holds more than the limit (bytes).
    TooLarge(u64),
    /// It is not UTF-8 text.
    NotText,
    /// It holds nothing but white space.
    Empty,
}

impl fmt::Display for Unusable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Unusable::Read(err) => write!(f, "cannot be read: {err}"),
            Unusable::TooLarge(limit) => write!(f, "is larger than {limit} bytes"),
            Unusable::NotText => f.write_str("does not hold text"),
            Unusable::Empty => f.write_str("is empty"),
        }
    }
}

/// The text of `file`, trimmed, if it holds at most `limit` bytes and something besides white
/// space. Every copy is wiped when dropped.
pub(crate) fn read_secret(file: impl Read, limit: u64) -> Result<Zeroizing<String>, Unusable> {
    let mut contents = Zeroizing::new(Vec::new());
    // One byte past the limit shows a file over it (or one that grew after it was checked).
    file.take(limit + 1)
        .read_to_end(&mut contents)
        .map_err(Unusable::Read)?;
    if contents.len() as u64 > limit {
        return Err(Unusable::TooLarge(limit));
    }
    let text = std::str::from_utf8(&contents)
        .map_err(|_| Unusable::NotText)?
        .trim();
    if text.is_empty() {
        return Err(Unusable::Empty);
    }
    Ok(Zeroizing::new(text.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_within_the_limit_is_trimmed_and_anything_else_says_why() {
        let read = |bytes: &[u8]| read_secret(bytes, 8).map(|s| s.as_str().to_owned());
        assert_eq!(read(b" key-1 \n").unwrap(), "key-1");
        assert_eq!(read(&[b'k'; 8]).unwrap(), "kkkkkkkk");
        let why = |bytes: &[u8]| read(bytes).unwrap_err().to_string();
        assert_eq!(why(&[b'k'; 9]), "is larger than 8 bytes");
        assert_eq!(why(b"\xff\xfe"), "does not hold text");
        assert_eq!(why(b" \r\n\t"), "is empty");
        assert_eq!(why(b""), "is empty");
    }
}
