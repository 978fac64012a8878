#!/usr/bin/python3
"""BitTorrent download benchmark: one file from three libtorrent seeders,
fetched by the project's client (`pytorrent --get FILE.torrent --peer ...`)
and then, in the same run and from the same seeders, by a libtorrent leecher
in a process of its own. Prints wall time, MB/s and peak RSS of each.

Usage: benches/bt_v2.py CLIENT_BIN [SIZE_MIB] [PIECE_KIB] [v2|v1|hybrid]
(defaults 1024, 1024, v2: the torrent's kind; v1 pieces are SHA-1, v2 are
merkle trees of SHA-256)
Use the release binary (cargo build --release). Everything runs on
127.0.0.1 in a temp directory that is removed at the end; the seeders are
one helper process with three libtorrent sessions (uTP off: the project's
client speaks TCP only, so the libtorrent leecher is held to TCP too).
The leecher's RSS includes its Python interpreter (about 10 MB).
"""

import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "interop"))
from run import sha256  # noqa: E402  (the interop tests' helper)

# Both helper processes start from this: a libtorrent session on loopback,
# TCP only, and a torrent added to it unpaused.
COMMON = r'''
import libtorrent as lt, sys, time
def session():
    return lt.session({"listen_interfaces": "127.0.0.1:0", "enable_dht": False, "enable_lsd": False,
                       "enable_upnp": False, "enable_natpmp": False, "enable_outgoing_utp": False,
                       "enable_incoming_utp": False, "allow_multiple_connections_per_ip": True})
def add(ses, torrent, save, flags=0):
    p = lt.add_torrent_params()
    p.ti = lt.torrent_info(torrent)
    p.save_path = save
    p.flags |= flags
    p.flags &= ~(lt.torrent_flags.auto_managed | lt.torrent_flags.paused)
    return ses.add_torrent(p)
'''

SEEDER = COMMON + r'''
torrent, save = sys.argv[1], sys.argv[2]
sessions = [session() for _ in range(3)]
# Checked at start, not seed_mode: in seed_mode libtorrent hashes each piece
# on its first request, which would slow whichever leecher runs first.
handles = [add(ses, torrent, save) for ses in sessions]
while not all(h.status().is_seeding for h in handles):
    time.sleep(0.1)
print(" ".join(str(s.listen_port()) for s in sessions), flush=True)
sys.stdin.read()
'''

LEECHER = COMMON + r'''
torrent, save, ports = sys.argv[1], sys.argv[2], sys.argv[3:]
ses = session()
h = add(ses, torrent, save)
for port in ports:
    h.connect_peer(("127.0.0.1", int(port)))
deadline = time.monotonic() + 600
while not h.status().is_seeding and time.monotonic() < deadline:
    time.sleep(0.05)
print("done" if h.status().is_seeding else "timeout", flush=True)
'''


def write_random(path, size):
    """A file of `size` random bytes, written 4 MiB at a time."""
    with open(path, "wb") as f:
        left = size
        while left:
            n = min(left, 4 << 20)
            f.write(os.urandom(n))
            left -= n


def timed(args, **kw):
    """Runs `args` under /usr/bin/time: (exit code, seconds, peak RSS in
    MiB, CPU seconds user+sys). Not wait4 on a child forked from here: Linux keeps the RSS high
    water mark across exec, so a child of this big Python process would
    report this process's RSS."""
    rss_file = tempfile.mktemp(prefix="pytorrent-rss-")
    start = time.monotonic()
    code = subprocess.call(["/usr/bin/time", "-f", "%M %U %S", "-o", rss_file] + args, **kw)
    secs = time.monotonic() - start
    with open(rss_file) as f:
        rss_kib, user, system = f.read().split()[-3:]
    os.unlink(rss_file)
    return code, secs, int(rss_kib) / 1024, float(user) + float(system)


def main():
    client = os.path.abspath(sys.argv[1])
    size = int(sys.argv[2]) << 20 if len(sys.argv) > 2 else 1 << 30
    piece = int(sys.argv[3]) << 10 if len(sys.argv) > 3 else 1 << 20
    kind = sys.argv[4] if len(sys.argv) > 4 else "v2"
    import libtorrent as lt
    flags = {"v2": lt.create_torrent.v2_only, "v1": lt.create_torrent.v1_only, "hybrid": 0}[kind]
    tmp = tempfile.mkdtemp(prefix="pytorrent-btbench-")
    seeders = None
    try:
        seed_dir = os.path.join(tmp, "seed")
        os.makedirs(seed_dir)
        path = os.path.join(seed_dir, "bench.bin")
        write_random(path, size)
        want = sha256(path)
        fs = lt.file_storage()
        lt.add_files(fs, path)
        ct = lt.create_torrent(fs, piece, flags=flags)
        lt.set_piece_hashes(ct, seed_dir)
        torrent = os.path.join(tmp, "bench.torrent")
        with open(torrent, "wb") as f:
            f.write(lt.bencode(ct.generate()))
        seeders = subprocess.Popen([sys.executable, "-c", SEEDER, torrent, seed_dir],
                                   stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        ports = seeders.stdout.readline().split()
        print(f"{kind} torrent, {size >> 20} MiB, {piece >> 10} KiB pieces, "
              f"3 libtorrent {lt.__version__} seeders on ports {ports}; load average {os.getloadavg()[0]:.2f}")

        own_dl = os.path.join(tmp, "own")
        os.makedirs(own_dl)
        config = os.path.join(tmp, "config.txt")
        open(config, "w").close()
        args = [client, "--get", torrent, "-d", own_dl, "-c", config, "-t", "127.0.0.1:9",
                "-l", "127.0.0.1:0", "--log", os.path.join(tmp, "own.log"), "-u", "bench"]
        for port in ports:
            args += ["--peer", f"127.0.0.1:{port}"]
        code, secs, rss, cpu = timed(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        ok = code == 0 and sha256(os.path.join(own_dl, "bench.bin")) == want
        own = (secs, rss)
        print(f"pytorrent:  {secs:6.2f} s  {size / secs / 1e6:7.1f} MB/s  peak RSS {rss:6.1f} MiB  "
              f"CPU {cpu:5.2f} s  {'byte-identical' if ok else 'FAILED (exit %d)' % code}")

        lt_dl = os.path.join(tmp, "lt")
        os.makedirs(lt_dl)
        code, secs, rss, cpu = timed([sys.executable, "-c", LEECHER, torrent, lt_dl] + ports,
                                     stdout=subprocess.DEVNULL)
        ok_lt = code == 0 and sha256(os.path.join(lt_dl, "bench.bin")) == want
        print(f"libtorrent: {secs:6.2f} s  {size / secs / 1e6:7.1f} MB/s  peak RSS {rss:6.1f} MiB  "
              f"CPU {cpu:5.2f} s  {'byte-identical' if ok_lt else 'FAILED'}")
        print(f"speed ratio pytorrent/libtorrent: {secs / own[0]:.2f}x; RSS ratio: {own[1] / rss:.3f}")
        if not (ok and ok_lt):
            sys.exit(1)
    finally:
        if seeders:
            seeders.kill()
            seeders.wait()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
