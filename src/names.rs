//! Validation and safe display of names that cross the network: usernames
//! and file names.
//!
//! Invariants: a name that passes [`check_file_name`] is a single path
//! component that cannot climb out of a directory (no separators, not `.` or
//! `..`, no control characters) and fits in common file systems (at most
//! [`MAX_FILE_NAME`] bytes). Text from the network is printed only through
//! [`escape`], so a peer cannot send escape sequences to a terminal or a log.

use std::fmt;
use unicode_normalization::{is_nfc, UnicodeNormalization};

/// Longest username, in characters.
pub const MAX_USERNAME_CHARS: usize = 32;
/// Longest file name, in bytes (the usual file-system limit).
pub const MAX_FILE_NAME: usize = 255;

/// Why a name was refused. The message never repeats the name itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameError {
    Empty,
    TooLong,
    Whitespace,
    Control,
    PathSeparator,
    DotName,
    /// Not in Unicode normal form C, so another spelling of the same name
    /// could exist beside it.
    NotNfc,
}

impl fmt::Display for NameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NameError::Empty => "is empty",
            NameError::TooLong => "is too long",
            NameError::Whitespace => "contains whitespace",
            NameError::Control => "contains a control or invisible character",
            NameError::PathSeparator => "contains a path separator",
            NameError::DotName => "is '.' or '..'",
            NameError::NotNfc => "is not in Unicode normal form C (NFC)",
        })
    }
}

impl std::error::Error for NameError {}

/// Characters that change how the text around them reads without being
/// seen: bidirectional controls (which can make `gpj.exe` show as
/// `exe.jpg`), zero-width characters, line and paragraph separators.
pub fn is_deceptive(c: char) -> bool {
    matches!(
        c,
        '\u{200B}'..='\u{200F}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{2069}'
            | '\u{2028}'
            | '\u{2029}'
            | '\u{061C}'
            | '\u{180E}'
            | '\u{FEFF}'
    )
}

/// A username: 1 to 32 characters, no whitespace, no control or
/// invisible characters ([`is_deceptive`]).
pub fn check_username(name: &str) -> Result<(), NameError> {
    if name.is_empty() {
        return Err(NameError::Empty);
    }
    if name.chars().count() > MAX_USERNAME_CHARS {
        return Err(NameError::TooLong);
    }
    if name.chars().any(|c| c.is_control() || is_deceptive(c)) {
        return Err(NameError::Control);
    }
    if name.chars().any(char::is_whitespace) {
        return Err(NameError::Whitespace);
    }
    Ok(())
}

/// A file name: one path component of 1 to 255 bytes, not `.` or `..`,
/// without `/`, `\` or control characters, in NFC (a file id covers its
/// name, so the network cannot normalise it; it refuses other spellings
/// instead). Spaces and non-ASCII letters are fine.
pub fn check_file_name(name: &str) -> Result<(), NameError> {
    if name.is_empty() {
        return Err(NameError::Empty);
    }
    if name.len() > MAX_FILE_NAME {
        return Err(NameError::TooLong);
    }
    if name == "." || name == ".." {
        return Err(NameError::DotName);
    }
    if name.contains(['/', '\\']) {
        return Err(NameError::PathSeparator);
    }
    if name.chars().any(char::is_control) {
        return Err(NameError::Control);
    }
    if !is_nfc(name) {
        return Err(NameError::NotNfc);
    }
    Ok(())
}

/// `name` in Unicode normal form C (composed), the form file names take
/// on the network.
pub fn to_nfc(name: &str) -> String {
    name.nfc().collect()
}

/// The form in which two usernames are compared: NFC, lower case. So
/// "Alice" and "alice", and the composed and decomposed spellings of
/// "José", are one name.
pub fn username_key(name: &str) -> String {
    name.nfc().collect::<String>().to_lowercase()
}

/// Text from the network, made safe to print: control characters (including
/// ESC, so no terminal escape sequences) are shown as `\u{..}` escapes;
/// everything else is kept, so non-ASCII names read naturally.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_control() || is_deceptive(c) {
            out.extend(c.escape_unicode());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invisible_and_direction_changing_characters_are_escaped_or_refused() {
        let sneaky = "photo\u{202E}gpj.exe";
        assert_eq!(escape(sneaky), "photo\\u{202e}gpj.exe");
        for c in [
            '\u{200B}', '\u{200D}', '\u{2066}', '\u{2028}', '\u{2029}', '\u{FEFF}',
        ] {
            let name = format!("a{c}b");
            assert!(!escape(&name).contains(c), "{c:?} shown raw");
            assert_eq!(check_username(&name), Err(NameError::Control), "{c:?}");
        }
        assert_eq!(
            escape("ünïcødé 漢字 😀"),
            "ünïcødé 漢字 😀",
            "ordinary text untouched"
        );
    }

    #[test]
    fn usernames() {
        assert_eq!(check_username("alice"), Ok(()));
        assert_eq!(check_username("ünïcødé_42"), Ok(()));
        assert_eq!(check_username(&"x".repeat(32)), Ok(()));
        assert_eq!(check_username(&"é".repeat(32)), Ok(()));
        assert_eq!(check_username(""), Err(NameError::Empty));
        assert_eq!(check_username(&"x".repeat(33)), Err(NameError::TooLong));
        assert_eq!(check_username("a b"), Err(NameError::Whitespace));
        assert_eq!(check_username("a\u{3000}b"), Err(NameError::Whitespace));
        assert_eq!(check_username("a\u{1b}[2J"), Err(NameError::Control));
        assert_eq!(check_username("tab\t"), Err(NameError::Control));
    }

    #[test]
    fn two_spellings_of_one_name_are_one_name() {
        let composed = "Jos\u{E9}";
        let decomposed = "Jose\u{301}";
        assert_eq!(username_key(composed), username_key(decomposed));
        assert_eq!(username_key("ALICE"), username_key("alice"));
        assert_ne!(username_key("alice"), username_key("alicia"));
        assert_eq!(check_file_name(composed), Ok(()));
        assert_eq!(check_file_name(decomposed), Err(NameError::NotNfc));
    }

    #[test]
    fn file_names() {
        assert_eq!(check_file_name("holiday photos ñ.zip"), Ok(()));
        assert_eq!(check_file_name("..hidden..but.fine"), Ok(()));
        assert_eq!(check_file_name(&"a".repeat(255)), Ok(()));
        assert_eq!(check_file_name(&"a".repeat(256)), Err(NameError::TooLong));
        assert_eq!(check_file_name(""), Err(NameError::Empty));
        assert_eq!(check_file_name(".."), Err(NameError::DotName));
        assert_eq!(check_file_name("."), Err(NameError::DotName));
        assert_eq!(check_file_name("../etc/passwd"), Err(NameError::PathSeparator));
        assert_eq!(check_file_name("a\\b"), Err(NameError::PathSeparator));
        assert_eq!(check_file_name("/abs"), Err(NameError::PathSeparator));
        assert_eq!(check_file_name("bell\u{7}"), Err(NameError::Control));
        assert_eq!(check_file_name("nul\0"), Err(NameError::Control));
    }

    #[test]
    fn escaping() {
        assert_eq!(escape("plain ñame"), "plain ñame");
        assert_eq!(escape("\u{1b}[31mred"), "\\u{1b}[31mred");
        assert_eq!(escape("a\nb"), "a\\u{a}b");
        assert!(!escape("\u{9b}x").contains('\u{9b}'));
    }
}
