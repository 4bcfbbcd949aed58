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

/// Unicode format characters (general category Cf) and the line and paragraph separators
/// (Zl, Zp), as ranges (Unicode 15). They are invisible or reorder text: `invoice\u{202E}gpj.exe`
/// shows as `invoiceexe.jpg`.
const INVISIBLE: &[(u32, u32)] = &[
    (0xAD, 0xAD),
    (0x600, 0x605),
    (0x61C, 0x61C),
    (0x6DD, 0x6DD),
    (0x70F, 0x70F),
    (0x890, 0x891),
    (0x8E2, 0x8E2),
    (0x180E, 0x180E),
    (0x200B, 0x200F),
    (0x2028, 0x202E),
    (0x2060, 0x2064),
    (0x2066, 0x206F),
    (0xFEFF, 0xFEFF),
    (0xFFF9, 0xFFFB),
    (0x110BD, 0x110BD),
    (0x110CD, 0x110CD),
    (0x13430, 0x1343F),
    (0x1BCA0, 0x1BCA3),
    (0x1D173, 0x1D17A),
    (0xE0001, 0xE0001),
    (0xE0020, 0xE007F),
];

/// True for a format (Cf), line separator (Zl) or paragraph separator (Zp) character.
fn is_invisible(c: char) -> bool {
    let c = c as u32;
    INVISIBLE.iter().any(|&(lo, hi)| (lo..=hi).contains(&c))
}

/// Checks that `name` is a single, plain file name: no separators, no `.`/`..`, no NUL,
/// control, format or separator characters, not only or surrounded by white space, at most
/// [`MAX_NAME_LEN`] bytes.
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
    if name.chars().any(is_invisible) {
        return bad("it contains an invisible or text-reordering character");
    }
    if name.trim().is_empty() {
        return bad("it is only white space");
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
        for n in [
            "test.pdf",
            "6 Tips For Getting A Job Abroad.pptx",
            ".DS_Store",
            "a=b;c#d",
            "résumé.txt",
            "日本語.txt",
        ] {
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
            "invoice\u{202E}gpj.exe",
            "a\u{200B}b",
            "\u{FEFF}x.txt",
            "a\u{2028}b",
            "a\u{2029}b",
            "x\u{E0041}",
            "\u{3000}\u{3000}",
        ] {
            let err = validate_name(n).unwrap_err();
            assert!(err.to_string().starts_with("invalid file name"), "{err}");
        }
    }
}
