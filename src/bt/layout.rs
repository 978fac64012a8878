//! Where a torrent's files sit in its piece space, and v1 piece checks
//! over that space (BEP 3, BEP 47, BEP 52). Pure: no I/O, no clock.
//!
//! The piece space is the files laid end to end in the torrent's order.
//! A v2 or hybrid torrent aligns every file to a piece boundary: BEP 47
//! pad files (zeros, never stored) fill the gap after each file that is
//! not the last, exactly where libtorrent writes them. A v2-only torrent
//! gets the same pads here, so a hybrid and its v2 half have one layout,
//! and comparing the two lists is how a hybrid is checked.
//!
//! Invariants of a [`FileLayout`]: entries are in piece-space order, each
//! one's `offset` is the sum of the lengths before it, `total_len` is the
//! sum of all of them; every path passed [`crate::names::check_file_name`]
//! component by component, no path is repeated and none is a folder of
//! another, so each file has its own place inside the torrent's folder.

use super::merkle::Hash;
use sha1::{Digest, Sha1};

/// A SHA-1 digest (v1 piece hashes and v1 info hashes).
pub type Sha1Hash = [u8; 20];

/// One entry of the piece space: a file, or padding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileEntry {
    /// Components relative to the downloads folder: `[name]` for a
    /// single-file torrent, `[name, folder.., file]` otherwise; empty
    /// for padding, which is never stored.
    pub path: Vec<String>,
    pub len: u64,
    /// Where the entry starts in the piece space.
    pub offset: u64,
    /// BEP 47 `p`: zeros that are hashed but never stored.
    pub pad: bool,
    /// BEP 47 `x`.
    pub executable: bool,
    /// BEP 47 `h`.
    pub hidden: bool,
    /// The v2 merkle root (v2 and hybrid torrents, files of 1 byte or more).
    pub pieces_root: Option<Hash>,
}

impl FileEntry {
    /// The path to store the file at, under the downloads folder.
    pub fn rel_path(&self) -> std::path::PathBuf {
        self.path.iter().collect()
    }

    /// The path inside the torrent's folder (a multi-file torrent's
    /// entries: the components after the torrent's name).
    pub fn rel_path_in_torrent(&self) -> std::path::PathBuf {
        self.path.iter().skip(1).collect()
    }

    fn pad(offset: u64, len: u64) -> FileEntry {
        FileEntry {
            path: Vec::new(),
            len,
            offset,
            pad: true,
            executable: false,
            hidden: false,
            pieces_root: None,
        }
    }
}

/// One stretch of a piece inside one entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    /// Index into [`FileLayout::files`].
    pub file: usize,
    /// Where the stretch starts in that file.
    pub file_offset: u64,
    pub len: u64,
}

/// The files of a torrent in its piece space.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileLayout {
    pub piece_len: u64,
    pub files: Vec<FileEntry>,
    /// Bytes of the piece space, padding included.
    pub total_len: u64,
}

impl FileLayout {
    /// Lays `files` (offsets ignored) end to end.
    pub fn new(piece_len: u64, mut files: Vec<FileEntry>) -> FileLayout {
        let mut offset = 0u64;
        for f in &mut files {
            f.offset = offset;
            offset += f.len;
        }
        FileLayout {
            piece_len,
            files,
            total_len: offset,
        }
    }

    /// Lays `files` (no padding among them) end to end with a pad after
    /// each one that is not the last and does not end on a piece
    /// boundary: the v1 view of a v2 torrent as libtorrent writes it.
    pub fn aligned(piece_len: u64, files: Vec<FileEntry>) -> FileLayout {
        let count = files.len();
        let mut out = Vec::with_capacity(2 * count);
        let mut offset = 0u64;
        for (i, f) in files.into_iter().enumerate() {
            offset += f.len;
            out.push(f);
            let gap = (piece_len - offset % piece_len) % piece_len;
            if i + 1 < count && gap > 0 {
                out.push(FileEntry::pad(0, gap));
                offset += gap;
            }
        }
        FileLayout::new(piece_len, out)
    }

    /// Pieces in the piece space.
    pub fn pieces(&self) -> u64 {
        self.total_len.div_ceil(self.piece_len)
    }

    /// Bytes of piece `index` (the last may be short; 0 past the end).
    pub fn piece_size(&self, index: u64) -> u64 {
        self.total_len
            .saturating_sub(index.saturating_mul(self.piece_len))
            .min(self.piece_len)
    }

    /// The stretches of files (and padding) that make up piece `index`,
    /// in order; empty past the end. Files of 0 bytes take no part.
    pub fn piece_spans(&self, index: u64) -> impl Iterator<Item = Span> + '_ {
        let start = index.saturating_mul(self.piece_len);
        let end = start.saturating_add(self.piece_size(index));
        // The first entry that ends after `start`.
        let first = self.files.partition_point(|f| f.offset + f.len <= start);
        self.files[first..]
            .iter()
            .enumerate()
            .take_while(move |(_, f)| f.offset < end)
            .filter(|(_, f)| f.len > 0)
            .map(move |(i, f)| {
                let from = start.max(f.offset);
                let to = end.min(f.offset + f.len);
                Span {
                    file: first + i,
                    file_offset: from - f.offset,
                    len: to - from,
                }
            })
    }

    /// Per entry: its index among the entries that are stored (files, not
    /// pads), as a list of files on disk numbers them.
    pub fn stored_index(&self) -> Vec<Option<usize>> {
        let mut next = 0;
        self.files
            .iter()
            .map(|f| {
                next += usize::from(!f.pad);
                (!f.pad).then_some(next - 1)
            })
            .collect()
    }

    /// Whether `other` has the same entries at the same places: paths and
    /// lengths of files, lengths of pads (pad names are not compared: they
    /// are never stored). How a hybrid's two halves are compared.
    /// A pad at the very end of `self` (libtorrent's hybrids fill their
    /// last piece with one) is not compared.
    pub fn same_files(&self, other: &FileLayout) -> bool {
        let mine = match self.files.split_last() {
            Some((last, rest))
                if last.pad && last.len < self.piece_len && other.files.last().is_none_or(|l| !l.pad) =>
            {
                rest
            }
            _ => &self.files[..],
        };
        self.piece_len == other.piece_len
            && mine.len() == other.files.len()
            && mine.iter().zip(&other.files).all(|(a, b)| {
                a.pad == b.pad && a.len == b.len && a.offset == b.offset && (a.pad || a.path == b.path)
            })
    }
}

/// How much of a piece [`check_v1_piece`] reads at a time.
const READ_CHUNK: usize = 64 << 10;

/// Whether piece `index` of `layout` hashes to `expected` (SHA-1), reading
/// its file stretches through `read(span, buf)` (which fills `buf`, of
/// `span.len` bytes at most, from `span.file` at `span.file_offset`);
/// padding is hashed as zeros without a read. Errors of `read` are passed
/// on. The bytes are hashed as they are read, in chunks of 64 KiB, so a
/// piece is never held whole.
pub fn check_v1_piece<E>(
    layout: &FileLayout,
    index: u64,
    expected: &Sha1Hash,
    mut read: impl FnMut(Span, &mut [u8]) -> Result<(), E>,
) -> Result<bool, E> {
    let mut hasher = Sha1::new();
    let mut buf = vec![0u8; READ_CHUNK.min(layout.piece_len as usize)];
    for span in layout.piece_spans(index) {
        let pad = layout.files[span.file].pad;
        let mut done = 0u64;
        while done < span.len {
            let n = (span.len - done).min(buf.len() as u64) as usize;
            if pad {
                buf[..n].fill(0);
            } else {
                let part = Span {
                    file_offset: span.file_offset + done,
                    len: n as u64,
                    ..span
                };
                read(part, &mut buf[..n])?;
            }
            hasher.update(&buf[..n]);
            done += n as u64;
        }
    }
    Ok(hasher.finalize()[..] == expected[..])
}

/// Whether a whole v1 piece held in memory (padding as zeros, as peers
/// send it) hashes to `expected`.
pub fn v1_piece_ok(piece: &[u8], expected: &Sha1Hash) -> bool {
    Sha1::digest(piece)[..] == expected[..]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(name: &str, len: u64) -> FileEntry {
        FileEntry {
            path: vec!["t".into(), name.into()],
            len,
            offset: 0,
            pad: false,
            executable: false,
            hidden: false,
            pieces_root: None,
        }
    }

    #[test]
    fn aligned_layouts_pad_like_libtorrent() {
        // libtorrent 2.0.8 writes: 5, pad 32763, 40000, pad 25536, 0.
        let l = FileLayout::aligned(32768, vec![file("a", 5), file("b", 40000), file("e", 0)]);
        let lens: Vec<(u64, bool)> = l.files.iter().map(|f| (f.len, f.pad)).collect();
        assert_eq!(
            lens,
            [
                (5, false),
                (32763, true),
                (40000, false),
                (25536, true),
                (0, false)
            ]
        );
        assert_eq!(l.files[2].offset, 32768);
        assert_eq!(l.total_len, 98304);
        assert_eq!(l.pieces(), 3);
        // A file ending on a boundary gets no pad; the last never does.
        let l = FileLayout::aligned(16384, vec![file("a", 16384), file("b", 7)]);
        assert_eq!(l.files.len(), 2);
        assert_eq!(l.piece_size(1), 7);
    }

    #[test]
    fn spans_cover_each_piece_exactly_once() {
        let l = FileLayout::new(
            16,
            vec![
                file("a", 5),
                file("z", 0),
                file("b", 30),
                file("c", 1),
                file("d", 20),
            ],
        );
        assert_eq!(l.pieces(), 4);
        let mut covered = vec![0u32; l.total_len as usize];
        for p in 0..l.pieces() + 1 {
            let mut at = p * 16;
            for s in l.piece_spans(p) {
                let f = &l.files[s.file];
                assert!(f.len > 0 && s.len > 0);
                assert_eq!(f.offset + s.file_offset, at, "piece {p} contiguous");
                for b in at..at + s.len {
                    covered[b as usize] += 1;
                }
                at += s.len;
            }
            assert_eq!(at - p * 16, l.piece_size(p), "piece {p} whole");
        }
        assert!(covered.iter().all(|&c| c == 1));
        let spans: Vec<Span> = l.piece_spans(2).collect();
        assert_eq!(
            spans,
            [
                Span {
                    file: 2,
                    file_offset: 27,
                    len: 3
                },
                Span {
                    file: 3,
                    file_offset: 0,
                    len: 1
                },
                Span {
                    file: 4,
                    file_offset: 0,
                    len: 12
                },
            ]
        );
    }

    #[test]
    fn a_piece_across_files_and_padding_checks_and_a_flipped_byte_does_not() {
        let l = FileLayout::aligned(32 << 10, vec![file("a", 20000), file("b", 50000), file("c", 3)]);
        let data: Vec<Vec<u8>> = [20000usize, 50000, 3]
            .iter()
            .map(|&n| (0..n).map(|i| (i * 7 % 251) as u8).collect())
            .collect();
        // The piece space as bytes, pads as zeros: what the hashes are of.
        let stored = l.stored_index();
        let space: Vec<u8> = l
            .files
            .iter()
            .zip(&stored)
            .flat_map(|(f, s)| s.map_or(vec![0; f.len as usize], |i| data[i].clone()))
            .collect();
        let hashes: Vec<Sha1Hash> = space
            .chunks(l.piece_len as usize)
            .map(|p| Sha1::digest(p).into())
            .collect();
        assert_eq!(hashes.len() as u64, l.pieces());
        let read = |data: &Vec<Vec<u8>>, s: Span, buf: &mut [u8]| -> Result<(), ()> {
            let d = &data[stored[s.file].ok_or(())?];
            let from = s.file_offset as usize;
            buf.copy_from_slice(&d[from..from + buf.len()]);
            Ok(())
        };
        for (i, h) in hashes.iter().enumerate() {
            let ok = check_v1_piece(&l, i as u64, h, |s, b| read(&data, s, b));
            assert_eq!(ok, Ok(true), "piece {i}");
            let piece = &space[i * l.piece_len as usize..][..l.piece_size(i as u64) as usize];
            assert!(v1_piece_ok(piece, h));
        }
        let mut bad = data.clone();
        bad[1][40000] ^= 1;
        // Byte 40000 of b sits at 32768 + 40000 = 72768: piece 2.
        assert_eq!(
            check_v1_piece(&l, 2, &hashes[2], |s, b| read(&bad, s, b)),
            Ok(false)
        );
        assert_eq!(
            check_v1_piece(&l, 1, &hashes[1], |s, b| read(&bad, s, b)),
            Ok(true)
        );
        let failing = check_v1_piece(&l, 0, &hashes[0], |_, _| Err::<(), _>("disk"));
        assert_eq!(failing, Err("disk"));
    }
}
