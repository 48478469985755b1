//! A text column as the file holds it, which is not always what the outbox wrote: a damaged file
//! (a flipped byte, an operator's edit) may hold bytes that are not UTF-8, or a BLOB, where text
//! belongs. Read as a Rust `String`, such a column fails the whole statement, and with it every
//! flush; read as a [`StoredText`], it fails only its own row, which the caller sets aside.

use rusqlite::types::{FromSql, FromSqlResult, ValueRef};

/// A column read back whatever it holds (`row.get::<_, StoredText>(i)` never fails).
#[derive(Debug, Clone)]
pub(crate) struct StoredText {
    text: Result<String, &'static str>,
    /// What it holds as readable text: a byte that is not UTF-8 becomes U+FFFD.
    shown: String,
}

impl StoredText {
    /// The text, or why the column holds none (the reason reads after "it ...").
    pub(crate) fn text(&self) -> Result<&str, &'static str> {
        self.text.as_deref().map_err(|why| *why)
    }

    /// What the column holds as readable text, for the failed list and for messages.
    pub(crate) fn shown(&self) -> &str {
        &self.shown
    }
}

impl FromSql for StoredText {
    fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
        let lossy = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
        Ok(match value {
            ValueRef::Text(bytes) => match std::str::from_utf8(bytes) {
                Ok(text) => StoredText {
                    text: Ok(text.to_owned()),
                    shown: text.to_owned(),
                },
                Err(_) => StoredText {
                    text: Err("holds bytes that are not UTF-8 text"),
                    shown: lossy(bytes),
                },
            },
            ValueRef::Blob(bytes) => StoredText {
                text: Err("holds a BLOB, not text"),
                shown: lossy(bytes),
            },
            ValueRef::Null => StoredText {
                text: Err("is NULL"),
                shown: String::new(),
            },
            ValueRef::Integer(n) => StoredText {
                text: Err("holds a number, not text"),
                shown: n.to_string(),
            },
            ValueRef::Real(x) => StoredText {
                text: Err("holds a number, not text"),
                shown: x.to_string(),
            },
        })
    }
}
