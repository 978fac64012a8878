//! Plain-text tables and human-readable sizes, as pure functions, for the
//! headless listings (and the terminal interface).
//!
//! Invariants: cells are escaped by the caller (network text goes through
//! [`crate::names::escape`]); columns are padded by display width
//! ([`crate::client::frontend::ui::width`]), so accented, CJK and emoji names line
//! up; no line ends in spaces.

use super::ui::width;
use crate::wire::tracker::Role;

/// Renders `rows` under `headers`, columns separated by two spaces.
/// Columns listed in `right` are right-aligned (numbers).
pub fn render(headers: &[&str], rows: &[Vec<String>], right: &[usize]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| width(h)).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate().take(widths.len()) {
            widths[i] = widths[i].max(width(cell));
        }
    }
    let mut out = String::new();
    let header: Vec<String> = headers.iter().map(|h| h.to_string()).collect();
    for row in std::iter::once(&header).chain(rows) {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate().take(widths.len()) {
            let pad = widths[i] - width(cell);
            if i > 0 {
                line.push_str("  ");
            }
            if right.contains(&i) {
                line.push_str(&" ".repeat(pad));
                line.push_str(cell);
            } else {
                line.push_str(cell);
                line.push_str(&" ".repeat(pad));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// The peer table's headers, the same in every view.
pub const PEER_HEADERS: [&str; 4] = ["USERNAME", "ADDRESS", "ROLE", "FILES"];

/// A peer's role as every view shows it: a peer that shares no file is a
/// leecher, whatever it registered as (a seeder whose folder is empty
/// has nothing to seed).
pub fn role_name(role: Role, files: u32) -> &'static str {
    match role {
        Role::Seeder if files > 0 => "seeder",
        _ => "leecher",
    }
}

/// `1 peer`, `2 files`, `0 chunks`: a count and its noun, plural unless 1.
pub fn count(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

/// A byte count for people: `999 B`, `1.5 KiB`, `20.0 MiB`, ...
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut value = n as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_line_up_by_characters() {
        let rows = vec![
            vec!["ñandú.txt".to_string(), "12".to_string()],
            vec!["a".to_string(), "1234".to_string()],
        ];
        let t = render(&["NAME", "SIZE"], &rows, &[1]);
        assert_eq!(t, "NAME       SIZE\nñandú.txt    12\na          1234\n");
    }

    #[test]
    fn columns_line_up_by_display_width() {
        let rows = vec![
            vec!["日本語.txt".to_string(), "12".to_string()],
            vec!["🎉party.bin".to_string(), "3".to_string()],
            vec!["a".to_string(), "1234".to_string()],
        ];
        let t = render(&["NAME", "SIZE"], &rows, &[1]);
        let lines: Vec<&str> = t.lines().collect();
        // Every line is as wide as the header: the columns line up on screen.
        for l in &lines {
            assert_eq!(width(l), width(lines[0]), "{t}");
        }
        assert_eq!(lines[1], "日本語.txt     12");
        assert_eq!(lines[2], "🎉party.bin     3");
    }

    #[test]
    fn counts_and_roles() {
        assert_eq!(count(0, "file"), "0 files");
        assert_eq!(count(1, "peer"), "1 peer");
        assert_eq!(count(2, "chunk"), "2 chunks");
        assert_eq!(role_name(Role::Seeder, 0), "leecher");
        assert_eq!(role_name(Role::Seeder, 3), "seeder");
        assert_eq!(role_name(Role::Leecher, 0), "leecher");
    }

    #[test]
    fn sizes() {
        assert_eq!(human_bytes(0), "0 B");
        assert_eq!(human_bytes(1023), "1023 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(20 << 20), "20.0 MiB");
        assert_eq!(human_bytes(u64::MAX), "16384.0 PiB");
    }
}
