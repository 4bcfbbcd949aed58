//! File names that may be shared: one plain path component, nothing that could escape a folder.

use std::fmt;

/// Longest file name accepted, in bytes (the common file-system limit).
pub const MAX_NAME_LEN: usize = 255;

/// Why a file name is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadName {
    pub name: String,
    pub reason: &'static str,
}

impl fmt::Display for BadName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shown: String = self.name.chars().take(64).collect::<String>().escape_debug().to_string();
        let more = if self.name.chars().count() > 64 { "..." } else { "" };
        write!(f, "invalid file name \"{shown}{more}\": {}", self.reason)
    }
}

impl std::error::Error for BadName {}

/// Checks that `name` is a single, plain file name: no separators, no `.`/`..`, no NUL or
/// control characters, no surrounding white space, at most [`MAX_NAME_LEN`] bytes.
pub fn validate_name(name: &str) -> Result<(), BadName> {
    let bad = |reason| Err(BadName { name: name.to_string(), reason });
    if name.is_empty() {
        return bad("it is empty");
    }
    if name.len() > MAX_NAME_LEN {
        return bad("it is longer than 255 bytes");
    }
    if name == "." || name == ".." {
        return bad("it names a folder");
    }
    if name.contains('/') || name.contains('\\') {
        return bad("it contains a path separator");
    }
    if name.contains('\0') {
        return bad("it contains a NUL byte");
    }
    if name.chars().any(char::is_control) {
        return bad("it contains a control character");
    }
    if name.trim() != name {
        return bad("it starts or ends with white space");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_plain_names() {
        for n in ["test.pdf", "6 Tips For Getting A Job Abroad.pptx", ".DS_Store", "a=b;c#d", "résumé.txt"]
        {
            assert_eq!(validate_name(n), Ok(()), "{n}");
        }
    }

    #[test]
    fn refuses_hostile_names() {
        let long = "x".repeat(256);
        for n in [
            "",
            ".",
            "..",
            "../x",
            "/etc/passwd",
            "a/../../b",
            "a\0b",
            "a\\b",
            "a\nb",
            " a",
            "a ",
            long.as_str(),
        ] {
            let err = validate_name(n).unwrap_err();
            assert!(err.to_string().starts_with("invalid file name"), "{err}");
        }
    }
}
