//! Test-only access to tests/vectors/: torrents written by libtorrent and
//! mktorrent (see make.py there) and the data they describe.

/// The bytes make.py gives a file at `rel` (its path below the torrent's
/// folder, or its name): byte j = (j * 131 + k) % 251, k = the sum of
/// the path's bytes % 251.
pub fn content(rel: &str, n: u64) -> Vec<u8> {
    let k = rel.bytes().map(u64::from).sum::<u64>() % 251;
    (0..n).map(|j| ((j * 131 + k) % 251) as u8).collect()
}

/// A file of tests/vectors/.
pub fn vector(name: &str) -> Vec<u8> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/vectors/");
    std::fs::read(format!("{dir}{name}")).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// expect.txt's fields for one torrent (what libtorrent says of it):
/// v1 hash, v2 hash ("-" when none), files, total size.
pub fn expected(torrent: &str) -> Vec<String> {
    let text = String::from_utf8(vector("expect.txt")).unwrap();
    let line = text.lines().find(|l| l.split(' ').next() == Some(torrent));
    line.unwrap_or_else(|| panic!("{torrent} not in expect.txt"))
        .split(' ')
        .skip(1)
        .map(String::from)
        .collect()
}

/// Every torrent listed in expect.txt.
pub fn listed() -> Vec<String> {
    let text = String::from_utf8(vector("expect.txt")).unwrap();
    text.lines()
        .filter_map(|l| l.split(' ').next())
        .map(String::from)
        .collect()
}
