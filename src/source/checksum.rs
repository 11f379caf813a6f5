//! The checksum of a forward script: SHA-256 of its text, with line endings normalised.

use std::fmt;

use sha2::{Digest, Sha256};

/// SHA-256 of a forward script with its line endings normalised (CRLF and LF hash the same) and
/// a leading byte-order mark ignored.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Checksum([u8; 32]);

impl Checksum {
    /// Checksum of a script's text.
    pub fn of(script: &str) -> Self {
        let text = script.strip_prefix('\u{feff}').unwrap_or(script);
        let mut hasher = Sha256::new();
        let mut rest = text;
        while let Some(pos) = rest.find("\r\n") {
            hasher.update(&rest.as_bytes()[..pos]);
            hasher.update(b"\n");
            rest = &rest[pos + 2..];
        }
        hasher.update(rest.as_bytes());
        Checksum(hasher.finalize().into())
    }

    /// The checksum as 64 lower-case hexadecimal digits.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Whether `hex` is this checksum in lower-case hexadecimal (without allocating).
    pub(crate) fn matches_hex(&self, hex: &str) -> bool {
        let mut buf = [0u8; 64];
        hex::encode_to_slice(self.0, &mut buf).is_ok() && buf == hex.as_bytes()
    }
}

impl fmt::Display for Checksum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for Checksum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Checksum({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksum_ignores_line_endings_and_bom() {
        let lf = Checksum::of("CREATE TABLE t(x);\nINSERT INTO t VALUES (1);\n");
        let crlf = Checksum::of("CREATE TABLE t(x);\r\nINSERT INTO t VALUES (1);\r\n");
        let bom = Checksum::of("\u{feff}CREATE TABLE t(x);\r\nINSERT INTO t VALUES (1);\n");
        assert_eq!(lf, crlf);
        assert_eq!(lf, bom);
        assert_ne!(
            lf,
            Checksum::of("CREATE TABLE t(y);\nINSERT INTO t VALUES (1);\n")
        );
        // Known value: sha256("a\n").
        assert_eq!(
            Checksum::of("a\r\n").to_hex(),
            "87428fc522803d31065e7bce3cf03fe475096631e5e07bbd7a0fde60c4cf25c7"
        );
    }
}
