//! Which files of a multi-file torrent a user wants (`--only GLOB`), and
//! so which pieces must be fetched. Pure.
//!
//! A pattern is matched against a file's path inside the torrent's folder
//! with `/` between components (`docs/a.txt`): `*` matches any run of
//! characters but `/`, `**` any run including `/`, `?` one character but
//! `/`; everything else matches itself. No pattern means every file.

use super::metainfo::Metainfo;

/// Most `--only` patterns, and the longest one (bytes).
pub const MAX_PATTERNS: usize = 32;
pub const MAX_PATTERN_LEN: usize = 1024;

/// Whether `path` matches `pattern` (see the module header).
pub fn glob(pattern: &str, path: &str) -> bool {
    let (p, s): (Vec<char>, Vec<char>) = (pattern.chars().collect(), path.chars().collect());
    matches(&p, &s)
}

fn matches(p: &[char], s: &[char]) -> bool {
    // dp[j]: the pattern so far matches s[..j]. No recursion, and work
    // O(len(p) x len(s)), both bounded: safe on a hostile pattern.
    let mut dp = vec![false; s.len() + 1];
    dp[0] = true;
    let mut i = 0;
    while i < p.len() {
        let mut next = vec![false; s.len() + 1];
        match p[i] {
            '*' if p.get(i + 1) == Some(&'*') => {
                let mut any = false;
                for j in 0..=s.len() {
                    any |= dp[j];
                    next[j] = any;
                }
                i += 1;
            }
            '*' => {
                let mut run = false;
                for j in 0..=s.len() {
                    run = dp[j] || (run && j > 0 && s[j - 1] != '/');
                    next[j] = run;
                }
            }
            c => {
                for j in 1..=s.len() {
                    next[j] = dp[j - 1] && (s[j - 1] == c || (c == '?' && s[j - 1] != '/'));
                }
            }
        }
        dp = next;
        i += 1;
    }
    dp[s.len()]
}

/// Per entry of the torrent's layout: whether it is wanted (padding and
/// every file when `patterns` is empty; a single-file torrent's file
/// always).
pub fn wanted_files(t: &Metainfo, patterns: &[String]) -> Vec<bool> {
    t.layout
        .files
        .iter()
        .map(|f| {
            if f.pad || patterns.is_empty() || !t.multi_file {
                return true;
            }
            let path = f.path[1..].join("/");
            patterns.iter().any(|p| glob(p, &path))
        })
        .collect()
}

/// Per piece: whether it holds a byte of a wanted file.
pub fn wanted_pieces(t: &Metainfo, files: &[bool]) -> Vec<bool> {
    (0..t.pieces())
        .map(|p| {
            t.layout
                .piece_spans(p)
                .any(|s| !t.layout.files[s.file].pad && files[s.file])
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_match_within_and_across_folders() {
        assert!(glob("*.txt", "a.txt"));
        assert!(!glob("*.txt", "docs/a.txt"), "* stops at /");
        assert!(glob("docs/*.txt", "docs/a.txt"));
        assert!(glob("**.txt", "docs/deep/a.txt"));
        assert!(glob("docs/**", "docs/deep/a.txt"));
        assert!(glob("?.bin", "a.bin"));
        assert!(!glob("?.bin", "ab.bin"));
        assert!(glob("a.bin", "a.bin"));
        assert!(!glob("a.bin", "b.bin"));
        assert!(glob("*", ""));
        assert!(
            !glob(&"*a".repeat(500), &"b".repeat(1000)),
            "bounded work on a hostile pattern"
        );
    }
}
