#!/usr/bin/python3
"""Writes the committed test vectors: torrents made by libtorrent and
mktorrent over files whose bytes are a formula (so the Rust tests rebuild
the data instead of committing it), and what libtorrent says of each.

Run from this folder: /usr/bin/python3 make.py   (needs Debian's
python3-libtorrent and mktorrent). The outputs are committed; the Rust
unit tests in src/bt/metainfo.rs read them.

Content of a file: byte j = (j * 131 + k) % 251, k = sum of the bytes of
its path relative to the torrent's folder (or of its name) % 251.
"""

import os
import shutil
import subprocess
import tempfile

import libtorrent as lt

FILES = {  # the multi-file torrent's folder "d": nested folders, a 0-byte file
    "A.txt": 5,
    "b.bin": 40000,
    "sub/a.bin": 70000,
    "sub/deep/c": 16384,
    "sub/empty": 0,
}
SINGLE = ("one.bin", 100000)
PIECE = 32768


def content(rel, n):
    k = sum(rel.encode()) % 251
    return bytes((j * 131 + k) % 251 for j in range(n))


def libtorrent_make(src, flags, out):
    fs = lt.file_storage()
    lt.add_files(fs, src)
    ct = lt.create_torrent(fs, PIECE, flags=flags)
    ct.add_tracker("udp://127.0.0.1:6969/announce", 0)
    ct.add_tracker("http://localhost:6969/announce", 1)
    lt.set_piece_hashes(ct, os.path.dirname(src))
    with open(out, "wb") as f:
        f.write(lt.bencode(ct.generate()))


def expect(path):
    ti = lt.torrent_info(path)
    h = ti.info_hashes()
    v1 = str(h.v1) if h.has_v1() else "-"
    v2 = str(h.v2) if h.has_v2() else "-"
    fs = ti.files()
    real = [i for i in range(fs.num_files()) if not fs.file_flags(i) & lt.file_storage.flag_pad_file]
    return f"{v1} {v2} {len(real)} {ti.total_size()}\n"


def main():
    work = tempfile.mkdtemp()
    try:
        d = os.path.join(work, "d")
        for rel, n in FILES.items():
            p = os.path.join(d, rel)
            os.makedirs(os.path.dirname(p), exist_ok=True)
            with open(p, "wb") as f:
                f.write(content(rel, n))
        one = os.path.join(work, SINGLE[0])
        with open(one, "wb") as f:
            f.write(content(SINGLE[0], SINGLE[1]))
        v1, v2 = lt.create_torrent.v1_only, lt.create_torrent.v2_only
        made = {
            "lt_v1_multi.torrent": (d, v1),
            "lt_v2_multi.torrent": (d, v2),
            "lt_hybrid_multi.torrent": (d, 0),
            "lt_v1_single.torrent": (one, v1),
            "lt_v2_single.torrent": (one, v2),
            "lt_hybrid_single.torrent": (one, 0),
        }
        for name, (src, flags) in made.items():
            libtorrent_make(src, flags, name)
        for name, src in [("mk_v1_multi.torrent", d), ("mk_v1_single.torrent", one)]:
            if os.path.exists(name):
                os.remove(name)
            subprocess.run(
                ["mktorrent", "-d", "-l", "15", "-a", "udp://127.0.0.1:6969/announce", "-o", name, src],
                check=True,
                stdout=subprocess.DEVNULL,
            )
        with open("expect.txt", "w") as f:
            for name in sorted(list(made) + ["mk_v1_multi.torrent", "mk_v1_single.torrent"]):
                f.write(f"{name} {expect(name)}")
    finally:
        shutil.rmtree(work)


if __name__ == "__main__":
    main()
