#!/usr/bin/python3
"""Interop tests of the tracker's BEP 15 side with real BitTorrent clients.

Run by .ci/run (which installs Debian's python3-libtorrent and aria2); not
part of `cargo test`, which stays self-contained. Everything runs on
127.0.0.1 with OS-chosen ports, every wait has a deadline, and every child
process is killed on the way out, pass or fail.

What it checks, against one `pytorrent-tracker` process:
1. libtorrent: a seeder and two leechers announce a v1 torrent to
   udp://127.0.0.1:PORT/announce, find each other only through the
   tracker (DHT, LSD, UPnP and PEX off), and both leechers end with a file
   whose SHA-256 equals the original's.
2. libtorrent's scrape returns the right counts (3 seeders, 0 leechers,
   2 completed), and so does a hand-made BEP 15 scrape.
3. aria2c (DHT on: it ignores UDP trackers without it) downloads the same
   torrent from the libtorrent seeder through the tracker, byte-identical.
4. The project's own clients (`pytorrent --seed`, `pytorrent --get`) share
   a file through the same tracker port while 1-3 run.
5. The tracker's --stats JSON saw BEP 15 and project traffic.
6. BitTorrent v2 downloads by the project's client from a libtorrent
   seeder found only through the tracker (BEP 15 client), from its
   .torrent and from a magnet link with only `tr=`.
7. BitTorrent v2 downloads by the project's client from libtorrent
   seeders given with --peer: a 20 MiB file with 16 KiB pieces from its
   .torrent, the same from a .torrent without piece layers and from a
   magnet link alone (metadata by ut_metadata, the piece layer by hash
   requests with proofs), and a 300 KiB file with 64 KiB pieces and one
   smaller than a piece; every download byte-identical (SHA-256).
8. A faulty seeder (a fake peer in this file) serving a flipped byte, or
   piece hashes that do not prove out, is dropped, the download fails and
   no file is put in place; with a good seeder beside the flipped-byte
   one, the download is byte-identical.
9. The project's client seeds to libtorrent: `pytorrent --seed --torrent
   NAME` writes NAME.torrent and prints its magnet link; libtorrent
   leechers given the .torrent (finding the seeder only through the
   tracker the seeder announced to) or the magnet link download a 300 KiB
   file with 64 KiB pieces (tail padding), a 20 MiB file with 16 KiB pieces
   (hash requests with proofs) and a file smaller than one piece,
   byte-identical.
10. BitTorrent downloads on the transfer core: a download from a throttled
   libtorrent seeder killed with SIGKILL part-way resumes from its record
   (after the kill libtorrent uploads only what the record lacks, plus at
   most 10% of the file) and ends byte-identical; `pytorrent --seed --get
   X.torrent` then seeds the file to a libtorrent leecher after the
   libtorrent seeder is gone.
11. Torrents written by the project's client: `pytorrent --torrent NAME`
   for a file and for a folder (nested folders, a 0-byte file), hybrid by
   default and with --v1-only. libtorrent reads each with the info hashes
   its magnet link names; a libtorrent seeder checks the shared files
   against it (both hash halves for a hybrid: any wrong SHA-1, merkle root
   or pad leaves it not seeding); then `pytorrent --torrent NAME --seed`
   seeds it alone: a libtorrent leecher downloads each hybrid from it, and
   aria2c each v1-only torrent (through the tracker), every file
   byte-identical; transmission-show reads the v1-only
   ones with the same hash. (aria2c 1.36 and Transmission 3.00 cannot use
   any hybrid torrent, libtorrent's own included: Transmission refuses the
   empty dictionary keys of BEP 52's file tree, aria2c drops them and
   computes another info hash.)

13. Torrents of every kind, seeded by libtorrent and found through our
    tracker: {v1, hybrid, v2} x {one file, a folder with nested folders and
    a 0-byte file}, mktorrent's v1 folder torrent, a btih magnet with only
    tr= (metadata by ut_metadata), and `--only GLOB` (that file alone is
    left); every file byte-identical. Hostile torrents whose paths try
    `..`, an absolute path or a separator inside a name are refused; a
    symlinked folder planted where the download's folder goes is not
    written through (the folder lands beside it as NAME.1).
    (PYTORRENT_INTEROP_ONLY=v2|v2_seed|core|write|torrents runs one
    section, for development.)

12. Message stream encryption (`bt::mse`, through the harness
    examples/mse_handshake.rs) with a libtorrent seeder whose
    out_enc_policy and in_enc_policy are forced (RC4 only): our initiator's
    encrypted handshake gets libtorrent's BitTorrent handshake back through
    RC4, and libtorrent's encrypted connection to our receiver delivers its
    handshake as the initial payload and a sane next message.

Usage: run.py TRACKER_BIN CLIENT_BIN MSE_HARNESS_BIN   (exit 0 only if every check passed)
"""

import hashlib
import json
import os
import random
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time

import libtorrent as lt

OVERALL_LIMIT_S = 420
FILE_SIZE = 3 * 1024 * 1024 + 12345  # not a multiple of the piece size
PIECE = 64 * 1024

children = []


def fail(msg):
    print(f"INTEROP FAIL: {msg}", file=sys.stderr, flush=True)
    raise SystemExit(1)


def step(msg):
    print(f"--> {msg}", flush=True)


def spawn(args, **kw):
    p = subprocess.Popen(args, **kw)
    children.append(p)
    return p


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def wait_until(what, check, limit_s):
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.1)
    fail(f"timed out after {limit_s} s waiting for {what}")


def read_line(proc, want, limit_s):
    """The first stdout line of `proc` containing `want`."""
    deadline = time.monotonic() + limit_s
    os.set_blocking(proc.stdout.fileno(), False)
    # Lines after the one returned stay for the next call.
    buf = getattr(proc, "pending", b"")
    while time.monotonic() < deadline:
        chunk = proc.stdout.read() or b""
        buf += chunk
        lines = buf.split(b"\n")
        for i, line in enumerate(lines[:-1]):
            if want in line.decode(errors="replace"):
                proc.pending = b"\n".join(lines[i + 1:])
                return line.decode(errors="replace")
        if not chunk and proc.poll() is not None:
            break
        time.sleep(0.05)
    fail(f"no line with {want!r} from {proc.args[0]} within {limit_s} s; got {buf[-2000:]!r}")


def free_port(kind):
    """A port the OS just gave out and took back (aria2c cannot take 0)."""
    s = socket.socket(socket.AF_INET, kind)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def bep15_scrape(port, info_hash):
    """(seeders, completed, leechers) by a hand-made BEP 15 scrape."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(2)
    try:
        s.sendto(struct.pack(">QII", 0x41727101980, 0, 1), ("127.0.0.1", port))
        action, tx, conn = struct.unpack(">IIQ", s.recvfrom(2048)[0])
        if (action, tx) != (0, 1):
            fail(f"bad connect response {action} {tx}")
        s.sendto(struct.pack(">QII", conn, 2, 2) + info_hash, ("127.0.0.1", port))
        data = s.recvfrom(2048)[0]
        action, tx, seeders, completed, leechers = struct.unpack(">IIIII", data)
        if (action, tx) != (2, 2):
            fail(f"bad scrape response {data!r}")
        return seeders, completed, leechers
    finally:
        s.close()


def session(tag):
    settings = {
        "listen_interfaces": "127.0.0.1:0",
        "enable_dht": False,
        "enable_lsd": False,
        "enable_upnp": False,
        "enable_natpmp": False,
        "allow_multiple_connections_per_ip": True,
        "alert_mask": lt.alert.category_t.tracker_notification | lt.alert.category_t.error_notification,
        "peer_fingerprint": lt.generate_fingerprint("PY", 0, 1, 0, 0),
        "user_agent": f"pytorrent-interop-{tag}",
    }
    return lt.session(settings)


def add(ses, info, save_path):
    params = lt.add_torrent_params()
    params.ti = info
    params.save_path = save_path
    # No peer exchange: peers must come from the tracker.
    params.flags &= ~(lt.torrent_flags.auto_managed | lt.torrent_flags.paused)
    params.flags |= lt.torrent_flags.disable_pex
    return ses.add_torrent(params)


def main():
    if len(sys.argv) != 4:
        fail("usage: run.py TRACKER_BIN CLIENT_BIN MSE_HARNESS_BIN")
    tracker_bin, client_bin, mse_bin = (os.path.abspath(a) for a in sys.argv[1:])
    tmp = tempfile.mkdtemp(prefix="pytorrent-interop-")
    try:
        run(tmp, tracker_bin, client_bin)
        run_mse(tmp, mse_bin)
    finally:
        for p in children:
            if p.poll() is None:
                p.kill()
            p.wait()
        if os.environ.get("PYTORRENT_KEEP_TEMP"):
            print(f"keeping {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


def run(tmp, tracker_bin, client_bin):
    stats_path = os.path.join(tmp, "stats.json")
    step("start pytorrent-tracker on 127.0.0.1:0")
    tracker = spawn(
        [tracker_bin, "--bind", "127.0.0.1:0", "--bt-interval", "300", "--stats", stats_path],
        stdout=subprocess.PIPE,
        stderr=open(os.path.join(tmp, "tracker.log"), "wb"),
    )
    banner = read_line(tracker, "listening on udp", 15)
    port = int(banner.split("listening on udp ")[1].split()[0].rsplit(":", 1)[1])
    announce = f"udp://127.0.0.1:{port}/announce"
    step(f"tracker at {announce}")

    # The project's own seeder first, so its traffic overlaps everything else.
    step("project client: --seed on the same tracker port")
    own_shared = os.path.join(tmp, "own-shared")
    own_dl = os.path.join(tmp, "own-dl")
    os.makedirs(own_shared)
    os.makedirs(own_dl)
    own_data = random.Random(7).randbytes(700_000)
    with open(os.path.join(own_shared, "own.bin"), "wb") as f:
        f.write(own_data)
    config = os.path.join(tmp, "config.txt")
    open(config, "w").close()
    common = ["-c", config, "-t", f"127.0.0.1:{port}", "-l", "127.0.0.1:0"]
    own_seeder = spawn(
        [client_bin, "--seed", "-u", "ownseed", "-s", own_shared, "-d", own_dl,
         "--log", os.path.join(tmp, "own-seed.log")] + common,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
    )
    read_line(own_seeder, "seeding", 30)

    step("make a 3 MiB file and a v1 torrent")
    seed_dir = os.path.join(tmp, "seed")
    os.makedirs(seed_dir)
    data = random.Random(1).randbytes(FILE_SIZE)
    path = os.path.join(seed_dir, "payload.bin")
    with open(path, "wb") as f:
        f.write(data)
    want = hashlib.sha256(data).hexdigest()
    fs = lt.file_storage()
    lt.add_files(fs, path)
    ct = lt.create_torrent(fs, PIECE, flags=lt.create_torrent.v1_only)
    ct.add_tracker(announce)
    lt.set_piece_hashes(ct, seed_dir)
    torrent_bytes = lt.bencode(ct.generate())
    torrent_path = os.path.join(tmp, "payload.torrent")
    with open(torrent_path, "wb") as f:
        f.write(torrent_bytes)
    info = lt.torrent_info(torrent_path)
    info_hash = bytes.fromhex(str(info.info_hashes().v1))

    step("libtorrent: one seeder, two leechers, peers only from the tracker")
    seeder = session("seed")
    seed_handle = add(seeder, info, seed_dir)
    wait_until("the seeder to check its file", lambda: seed_handle.status().is_seeding, 30)
    leechers = []
    for i in range(2):
        ses = session(f"leech{i}")
        d = os.path.join(tmp, f"leech{i}")
        os.makedirs(d)
        leechers.append((ses, add(ses, info, d), d))

    # Meanwhile the project's own download runs through the same port.
    step("project client: --get through the same tracker port, concurrently")
    own_get = spawn(
        [client_bin, "--get", "own.bin", "-u", "ownget", "-d", own_dl, "--peer-wait", "60",
         "--log", os.path.join(tmp, "own-get.log")] + common,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
    )

    def all_done():
        return all(h.status().is_seeding for _, h, _ in leechers)

    # Peers each leecher got in its tracker replies (most in one reply).
    tracker_peers = [0, 0]

    def note_replies():
        for i, (ses, _, _) in enumerate(leechers):
            for a in ses.pop_alerts():
                if isinstance(a, lt.tracker_reply_alert):
                    tracker_peers[i] = max(tracker_peers[i], a.num_peers)

    deadline = time.monotonic() + 90
    while not all_done():
        note_replies()
        if time.monotonic() > deadline:
            for ses, h, _ in leechers:
                s = h.status()
                print(f"leecher: state={s.state} progress={s.progress:.2f} peers={s.num_peers} "
                      f"tracker={s.current_tracker!r}", file=sys.stderr)
            fail("libtorrent leechers did not finish within 90 s")
        time.sleep(0.2)
    for _, h, d in leechers:
        got = sha256(os.path.join(d, "payload.bin"))
        if got != want:
            fail(f"libtorrent download differs: {got} != {want}")
    step(f"libtorrent: both leechers byte-identical (sha256 {want[:16]}...)")

    # The tracker gave every leecher peers, and the later one both others
    # (the seeder and the first leecher): the swarm came from the tracker.
    note_replies()
    if min(tracker_peers) < 1 or max(tracker_peers) < 2:
        fail(f"tracker replies gave the leechers {tracker_peers} peers; want >= 1 each, 2 for one")
    step(f"libtorrent: tracker replies carried {tracker_peers} peers")

    step("scrape: libtorrent and a hand-made BEP 15 scrape")
    # Each finished leecher re-announces with event=completed; give them
    # the chance to do it, then ask.
    def scrape_counts():
        s, c, l = bep15_scrape(port, info_hash)
        return (s, c, l) if (s, c, l) == (3, 2, 0) else None

    wait_until("scrape counts of 3 seeders, 2 completed, 0 leechers", scrape_counts, 30)
    seed_handle.scrape_tracker()

    def lt_scrape():
        for a in seeder.pop_alerts():
            if isinstance(a, lt.scrape_reply_alert):
                return (a.complete, a.incomplete)
            if isinstance(a, lt.scrape_failed_alert):
                fail(f"libtorrent scrape failed: {a.message()}")
        return None

    complete, incomplete = wait_until("libtorrent's scrape reply", lt_scrape, 20)
    if (complete, incomplete) != (3, 0):
        fail(f"libtorrent scrape says {complete} seeders, {incomplete} leechers; want 3, 0")
    step(f"scrape: {complete} seeders, {incomplete} leechers, 2 completed")

    step("aria2c: download the torrent from the libtorrent seeder through the tracker")
    aria_dir = aria2_get(tmp, "v1", torrent_path)
    got = sha256(os.path.join(aria_dir, "payload.bin"))
    if got != want:
        fail(f"aria2c download differs: {got} != {want}")
    step("aria2c: byte-identical")

    step("project client: --get finished through the same port")
    line = read_line(own_get, "downloaded own.bin", 60)
    if own_get.wait(timeout=30) != 0:
        fail(f"pytorrent --get exited {own_get.returncode}")
    got = sha256(os.path.join(own_dl, "own.bin"))
    if got != hashlib.sha256(own_data).hexdigest() or got not in line:
        fail(f"project download differs: {line}")
    step("project client: byte-identical")

    only = os.environ.get("PYTORRENT_INTEROP_ONLY")  # one section, while developing
    sections = [("v2", lambda: run_v2(tmp, client_bin, announce)),
                ("v2_seed", lambda: run_v2_seed(tmp, client_bin, announce, port)),
                ("core", lambda: run_core(tmp, client_bin, port)),
                ("write", lambda: run_write(tmp, client_bin, announce, port)),
                ("torrents", lambda: run_torrents(tmp, client_bin, announce, port))]
    for name, section in sections:
        if only in (None, name):
            section()
    if only:
        return

    step("tracker counters (--stats JSON, written on SIGTERM)")
    tracker.send_signal(signal.SIGTERM)
    if tracker.wait(timeout=10) != 0:
        fail(f"tracker exited {tracker.returncode}")
    stats = json.load(open(stats_path))
    bt = stats["bep15"]["ipv4"]
    # libtorrent shares one connection id among its sessions, so connects
    # are: libtorrent, aria2c, the hand-made scrape. Announces: the seeder
    # (started), each leecher (started, completed), aria2c (started,
    # stopped).
    if bt["announces"] < 7 or bt["connects"] < 3 or bt["scrapes"] < 2 or bt["errors"] != 0:
        fail(f"too few BEP 15 requests counted: {stats}")
    if stats["own"]["requests"]["ipv4"] < 4:
        fail(f"too few project requests counted: {stats}")
    print(f"stats: {json.dumps(stats)}")


def make_v2(path, size, piece, seed, tracker=None):
    """A file of `size` random bytes and its v2-only .torrent (bytes)."""
    data = random.Random(seed).randbytes(size)
    with open(path, "wb") as f:
        f.write(data)
    fs = lt.file_storage()
    lt.add_files(fs, path)
    ct = lt.create_torrent(fs, piece, flags=lt.create_torrent.v2_only)
    if tracker:
        ct.add_tracker(tracker)
    lt.set_piece_hashes(ct, os.path.dirname(path))
    torrent = lt.bencode(ct.generate())
    with open(path + ".torrent", "wb") as f:
        f.write(torrent)
    return data, torrent


def lt_seeder(tag, torrent_path, save_path):
    """A libtorrent session seeding the torrent; its TCP port."""
    ses = session(tag)
    h = add(ses, lt.torrent_info(torrent_path), save_path)
    wait_until(f"libtorrent {tag} to check its file", lambda: h.status().is_seeding, 30)
    return ses, ses.listen_port()


def v2_get(client_bin, tmp, tag, source, peers, expect_ok=True, limit_s=60):
    """Runs `pytorrent --get SOURCE --peer ...` (no tracker); (exit code, output, dir)."""
    extra = [a for p in peers for a in ("--peer", f"127.0.0.1:{p}")]
    code, out, dl = get_torrent(client_bin, tmp, f"v2-{tag}", source, 9, extra=extra, limit_s=limit_s)
    if expect_ok and code != 0:
        fail(f"pytorrent --get {tag} exited {code}: {out[-2000:]}")
    return code, out, dl


def check_same(tag, path, data, out):
    want = hashlib.sha256(data).hexdigest()
    got = sha256(path)
    if got != want or want not in out:
        fail(f"v2 download {tag} differs: {got} != {want}; said {out[-500:]!r}")
    step(f"v2 {tag}: byte-identical (sha256 {want[:16]}...)")


def get_same(client_bin, tmp, tag, source, peers, name, data, what):
    """`pytorrent --get SOURCE` must succeed with the bytes of `data`."""
    _, out, dl = v2_get(client_bin, tmp, tag, source, peers)
    check_same(what, os.path.join(dl, name), data, out)


def fake_seeder(torrent_bytes, data, bad):
    """A BitTorrent seeder that lies: `bad` is "byte" (a flipped byte in
    every piece it serves) or "hashes" (wrong piece-layer hashes). Serves
    one connection at a time on its own thread; returns its port."""
    import threading
    info = lt.bdecode(torrent_bytes)[b"info"]
    short = hashlib.sha256(lt.bencode(info)).digest()[:20]
    piece_len = info[b"piece length"]
    pieces = (len(data) + piece_len - 1) // piece_len
    served = bytearray(data)
    if bad == "byte":
        for i in range(0, len(served), piece_len):
            served[i + min(100, len(data) - i - 1)] ^= 0xFF
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)

    def recv(c, n):
        buf = b""
        while len(buf) < n:
            chunk = c.recv(n - len(buf))
            if not chunk:
                raise EOFError
            buf += chunk
        return buf

    def msg(c, mid, body=b""):
        c.sendall(struct.pack(">IB", 1 + len(body), mid) + body)

    def serve(c):
        try:
            hs = recv(c, 68)
            if hs[28:48] != short:
                return
            c.sendall(b"\x13BitTorrent protocol" + bytes([0, 0, 0, 0, 0, 0x10, 0, 0]) + short + b"-FAKE0-" + b"x" * 13)
            bits = bytearray((pieces + 7) // 8)
            for i in range(pieces):
                bits[i // 8] |= 0x80 >> (i % 8)
            msg(c, 5, bytes(bits))
            msg(c, 1)
            while True:
                (n,) = struct.unpack(">I", recv(c, 4))
                body = recv(c, n) if n else b""
                if not body:
                    continue
                if body[0] == 6:
                    index, begin, length = struct.unpack(">III", body[1:13])
                    at = index * piece_len + begin
                    msg(c, 7, struct.pack(">II", index, begin) + bytes(served[at:at + length]))
                elif body[0] == 21:
                    root, base, index, count, proofs = struct.unpack(">32sIIII", body[1:49])
                    uncles = max(0, proofs - count.bit_length() + 2)
                    junk = random.Random(index).randbytes(32 * (count + uncles))
                    msg(c, 22, body[1:49] + junk)
        except (EOFError, OSError):
            pass
        finally:
            c.close()

    def accept():
        while True:
            try:
                c, _ = srv.accept()
            except OSError:
                return
            threading.Thread(target=serve, args=(c,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    return srv.getsockname()[1]


def run_v2(tmp, client_bin, announce):
    seed_dir = os.path.join(tmp, "v2seed")
    os.makedirs(seed_dir)
    step("v2: a libtorrent seeder announces a v2 torrent; the project's client finds it by the tracker")
    tracked = os.path.join(seed_dir, "tracked.bin")
    t_data, t_torrent = make_v2(tracked, 3 << 20, 32 << 10, 14, tracker=announce)
    t_ses, _ = lt_seeder("v2-tracked", tracked + ".torrent", seed_dir)

    def announced():
        return any(isinstance(a, lt.tracker_reply_alert) for a in t_ses.pop_alerts())

    wait_until("the libtorrent seeder's announce", announced, 30)
    get_same(client_bin, tmp, "tracker", tracked + ".torrent", [], "tracked.bin", t_data,
             "through the tracker (.torrent)")
    t_hash = str(lt.torrent_info(t_torrent).info_hashes().v2)
    magnet = f"magnet:?xt=urn:btmh:1220{t_hash}&tr={announce}"
    get_same(client_bin, tmp, "tracker-magnet", magnet, [], "tracked.bin", t_data,
             "through the tracker (magnet link)")

    step("v2: libtorrent seeds v2-only torrents; the project's client downloads them with --peer")
    files = {}
    for name, size, piece, seed in [("big.bin", 20 << 20, 16 << 10, 11),
                                    ("tail.bin", 300 << 10, 64 << 10, 12),
                                    ("small.bin", 5000, 64 << 10, 13)]:
        path = os.path.join(seed_dir, name)
        files[name] = make_v2(path, size, piece, seed)
    sessions = []
    ports = {}
    for name in files:
        ses, port = lt_seeder(f"v2-{name}", os.path.join(seed_dir, name + ".torrent"), seed_dir)
        sessions.append(ses)
        ports[name] = port

    for name, (data, torrent) in files.items():
        get_same(client_bin, tmp, f"torrent-{name}", os.path.join(seed_dir, name + ".torrent"), [ports[name]],
                 name, data, f".torrent {name}")

    big_data, big_torrent = files["big.bin"]
    stripped = lt.bdecode(big_torrent)
    del stripped[b"piece layers"]
    nolayer = os.path.join(tmp, "nolayer.torrent")
    with open(nolayer, "wb") as f:
        f.write(lt.bencode(stripped))
    get_same(client_bin, tmp, "nolayer", nolayer, [ports["big.bin"]], "big.bin", big_data,
             ".torrent without piece layers (hash requests)")

    v2hash = str(lt.torrent_info(big_torrent).info_hashes().v2)
    magnet = f"magnet:?xt=urn:btmh:1220{v2hash}&dn=big.bin&x.pe=127.0.0.1:{ports['big.bin']}"
    get_same(client_bin, tmp, "magnet", magnet, [], "big.bin", big_data,
             "magnet link alone (ut_metadata, hash requests)")

    step("v2: faulty seeders are dropped and nothing is put in place")
    tail_data, tail_torrent = files["tail.bin"]
    flipped = fake_seeder(tail_torrent, tail_data, "byte")
    code, out, dl = v2_get(client_bin, tmp, "flipped", os.path.join(seed_dir, "tail.bin.torrent"), [flipped],
                           expect_ok=False)
    if code == 0 or os.listdir(dl) not in ([], [".pytorrent"]) or "tail.bin" in os.listdir(dl):
        fail(f"a flipped-byte seeder was not refused: exit {code}, {os.listdir(dl)}, {out[-1000:]!r}")
    log = open(os.path.join(tmp, "get-v2-flipped.log")).read()
    if "failed its hash" not in log or "peer dropped" not in log:
        fail(f"the flipped-byte seeder was not struck and dropped: {log[-2000:]}")
    step("v2 flipped byte: pieces rejected, peer dropped, no file")

    liar = fake_seeder(big_torrent, big_data, "hashes")
    code, out, dl = v2_get(client_bin, tmp, "badhashes", nolayer, [liar], expect_ok=False)
    log = open(os.path.join(tmp, "get-v2-badhashes.log")).read()
    if code == 0 or "big.bin" in os.listdir(dl) or "do not prove out" not in log:
        fail(f"a seeder with bad hashes was not refused: exit {code}, {os.listdir(dl)}, {log[-2000:]}")
    step("v2 bad hashes: peer dropped, no file")

    get_same(client_bin, tmp, "flipped-and-good", os.path.join(seed_dir, "tail.bin.torrent"),
             [flipped, ports["tail.bin"]], "tail.bin", tail_data, "flipped-byte seeder beside a good one")
    del sessions, t_ses


def lt_leech(tag, params, save_path, peer_port=None):
    """A libtorrent leecher (TCP only: no uTP, which the project's client
    does not speak) of `params`; connects to `peer_port` if given."""
    ses = session(tag)
    ses.apply_settings({"enable_outgoing_utp": False, "enable_incoming_utp": False})
    params.save_path = save_path
    params.flags &= ~(lt.torrent_flags.auto_managed | lt.torrent_flags.paused)
    params.flags |= lt.torrent_flags.disable_pex
    h = ses.add_torrent(params)
    if peer_port:
        h.connect_peer(("127.0.0.1", peer_port))
    return ses, h


def run_v2_seed(tmp, client_bin, announce, tracker_port):
    step("v2 seeding: the project's client seeds; libtorrent leechers download")
    config = os.path.join(tmp, "config.txt")
    for name, size, piece_kib, seed in [("s300k.bin", 300 << 10, 64, 21),
                                        ("s20m.bin", 20 << 20, 16, 22),
                                        ("stiny.bin", 7000, 64, 23)]:
        shared = os.path.join(tmp, f"seed-{name}")
        os.makedirs(shared)
        data = random.Random(seed).randbytes(size)
        with open(os.path.join(shared, name), "wb") as f:
            f.write(data)
        listen = free_port(socket.SOCK_STREAM)
        seeder = spawn(
            [client_bin, "--seed", "--torrent", name, "--piece-size-kib", str(piece_kib), "-u", f"s{seed}",
             "-s", shared, "-d", os.path.join(tmp, f"seed-dl-{name}"), "-c", config,
             "-t", f"127.0.0.1:{tracker_port}", "-l", f"127.0.0.1:{listen}",
             "--log", os.path.join(tmp, f"seed-{name}.log")],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=shared,
        )
        read_line(seeder, "wrote", 30)
        magnet = read_line(seeder, "magnet:?", 5).strip()
        read_line(seeder, "seeding", 30)
        torrent_path = os.path.join(shared, name + ".torrent")
        info = lt.torrent_info(torrent_path)
        if f"udp://127.0.0.1:{tracker_port}/announce" not in [t.url for t in info.trackers()]:
            fail(f"{name}.torrent does not name the tracker")
        if str(info.info_hashes().v2) not in magnet:
            fail(f"the magnet link {magnet!r} is not the torrent's")
        by_torrent = lt.add_torrent_params()
        by_torrent.ti = info
        # One after the other, so each can only have had the project's
        # seeder to download from: the first found it through the tracker.
        leechers = []
        for how, params, peer in [("t", by_torrent, None), ("m", lt.parse_magnet_uri(magnet), listen)]:
            ses, h = lt_leech(f"lt-{name}-{how}", params, os.path.join(tmp, f"lt-{name}-{how}"), peer)
            leechers.append(ses)
            deadline = time.monotonic() + 60
            while not h.status().is_seeding:
                if time.monotonic() > deadline:
                    st = h.status()
                    fail(f"libtorrent leecher {how} of {name} did not finish: {st.state} {st.progress} "
                         f"{st.num_peers} peers")
                time.sleep(0.2)
        want = hashlib.sha256(data).hexdigest()
        for how in ("t", "m"):
            got = sha256(os.path.join(tmp, f"lt-{name}-{how}", name))
            if got != want:
                fail(f"libtorrent download of {name} ({how}) from the project's seeder differs")
        seeder.send_signal(signal.SIGTERM)
        seeder.wait(timeout=10)
        del leechers
        step(f"v2 seeding {name} ({size} bytes, {piece_kib} KiB pieces): .torrent via the tracker and "
             f"magnet link, byte-identical (sha256 {want[:16]}...)")


def uploaded(ses):
    """Bytes a libtorrent session uploaded (payload), all torrents."""
    return sum(h.status().all_time_upload for h in ses.get_torrents())


def run_core(tmp, client_bin, tracker_port):
    step("core: kill -9 mid-download, resume from a libtorrent seeder")
    seed_dir = os.path.join(tmp, "core-seed")
    os.makedirs(seed_dir)
    path = os.path.join(seed_dir, "resume.bin")
    size = 32 << 20
    data, _ = make_v2(path, size, 256 << 10, 31)
    ses, lt_port = lt_seeder("core-seeder", path + ".torrent", seed_dir)
    # Loopback peers are in libtorrent's "local" class: throttle it, so
    # the download is still under way when it is killed.
    pc = ses.get_peer_class(ses.local_peer_class_id)
    pc["upload_limit"] = 8 << 20
    ses.set_peer_class(ses.local_peer_class_id, pc)
    dl = os.path.join(tmp, "core-dl")
    os.makedirs(dl)
    config = os.path.join(tmp, "core-config.txt")
    open(config, "w").close()

    listen = free_port(socket.SOCK_STREAM)

    def get(extra, tag):
        args = [client_bin, "--get", path + ".torrent", "--peer", f"127.0.0.1:{lt_port}", "-u", "core",
                "-d", dl, "-c", config, "-t", f"127.0.0.1:{tracker_port}", "-l", f"127.0.0.1:{listen}",
                "--peer-wait", "20", "--log", os.path.join(tmp, f"core-{tag}.log")] + extra
        return spawn(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

    first = get([], "first")
    work = os.path.join(dl, ".pytorrent")

    def recorded():
        # A record exists and the download is well under way.
        states = [f for f in os.listdir(work) if f.endswith(".state")] if os.path.isdir(work) else []
        return states and uploaded(ses) > size // 3

    wait_until("a resume record a third of the way in", recorded, 30)
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=10)
    time.sleep(2)  # libtorrent's counters move once a second
    before = uploaded(ses)
    if before >= size:
        fail(f"killed too late: {before} of {size} bytes already uploaded")
    pc["upload_limit"] = 0
    ses.set_peer_class(ses.local_peer_class_id, pc)
    os.makedirs(os.path.join(tmp, "core-shared"))
    second = get(["--seed", "-s", os.path.join(tmp, "core-shared")], "second")
    line = read_line(second, "resuming", 30)
    done = read_line(second, "downloaded resume.bin", 60)
    check_same("resumed", os.path.join(dl, "resume.bin"), data, done)
    kept, pieces = (int(n) for n in line.split(": ")[1].split(" chunks")[0].split(" of "))
    time.sleep(2)  # libtorrent's counters move once a second
    after = uploaded(ses) - before
    missing = size * (pieces - kept) / pieces
    if after > missing + size * 0.10:
        fail(f"after the kill libtorrent uploaded {after / size:.2f}x the file, "
             f"{missing / size:.2f}x was missing: the resume fetched too much again")
    step(f"core: {line.strip()}; after the kill libtorrent uploaded {after / size:.3f}x the file "
         f"({missing / size:.3f}x was missing; {before / size:.2f}x before the kill)")

    step("core: the finished download is seeded to a libtorrent leecher once the first seeder is gone")
    del ses
    params = lt.add_torrent_params()
    params.ti = lt.torrent_info(path + ".torrent")
    read_line(second, "seeding", 30)
    leech_dir = os.path.join(tmp, "core-leech")
    l_ses, h = lt_leech("core-leecher", params, leech_dir, listen)
    deadline = time.monotonic() + 60
    while not h.status().is_seeding:
        if time.monotonic() > deadline:
            st = h.status()
            fail(f"libtorrent leecher of the re-seeded file did not finish: {st.state} {st.progress} "
                 f"{st.num_peers} peers")
        time.sleep(0.2)
    got = sha256(os.path.join(leech_dir, "resume.bin"))
    if got != hashlib.sha256(data).hexdigest():
        fail("libtorrent's copy of the re-seeded file differs")
    second.send_signal(signal.SIGTERM)
    second.wait(timeout=10)
    del l_ses
    step("core: re-seeded to libtorrent, byte-identical")


WRITE_FILES = {  # below the shared folder: one file, and a folder "wdir"
    "w1.bin": 1_049_353,
    "wdir/a.bin": 100_001,
    "wdir/sub/b.bin": 300_000,
    "wdir/sub/deep/c.txt": 17,
    "wdir/sub/empty": 0,
    "wdir/z.bin": 65_536,
}


def aria2_get(tmp, tag, torrent_path):
    """aria2c downloads `torrent_path` through its (UDP) tracker; its folder."""
    out = os.path.join(tmp, f"aria2-{tag}")
    log = os.path.join(tmp, f"aria2-{tag}.log")
    aria = spawn(
        ["aria2c", "--enable-dht=true", f"--dht-listen-port={free_port(socket.SOCK_DGRAM)}",
         f"--dht-file-path={os.path.join(tmp, f'dht-{tag}.dat')}",
         "--bt-enable-lpd=false", "--enable-peer-exchange=false", "--seed-time=0",
         f"--listen-port={free_port(socket.SOCK_STREAM)}", "--summary-interval=0", "--console-log-level=warn",
         "--bt-stop-timeout=90", f"--dir={out}", torrent_path],
        stdout=open(log, "wb"), stderr=subprocess.STDOUT,
    )
    try:
        code = aria.wait(timeout=100)
    except subprocess.TimeoutExpired:
        aria.kill()
        fail(f"aria2c {tag} did not finish within 100 s:\n" + open(log).read()[-3000:])
    if code != 0:
        fail(f"aria2c {tag} exited {code}:\n" + open(log).read()[-3000:])
    return out


def run_write(tmp, client_bin, announce, tracker_port):
    step("torrents written by the project's client: libtorrent, aria2c and transmission-show read them")
    shared = os.path.join(tmp, "write-shared")
    want = {}
    for i, (rel, size) in enumerate(WRITE_FILES.items()):
        path = os.path.join(shared, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        data = random.Random(100 + i).randbytes(size)
        with open(path, "wb") as f:
            f.write(data)
        want[rel] = hashlib.sha256(data).hexdigest()
    config = os.path.join(tmp, "config.txt")
    for flag, kind in [([], "hybrid"), (["--v1-only"], "v1")]:
        for name in ["w1.bin", "wdir"]:
            out = os.path.join(tmp, f"write-{kind}-{name}")
            os.makedirs(out)
            made = subprocess.run(
                [client_bin, "--torrent", name, "--piece-size-kib", "32", "-s", shared, "-c", config,
                 "-t", f"127.0.0.1:{tracker_port}", "--log", os.path.join(out, "log")] + flag,
                cwd=out, capture_output=True, text=True, timeout=60,
            )
            if made.returncode != 0:
                fail(f"pytorrent --torrent {name} {flag} exited {made.returncode}: {made.stdout} {made.stderr}")
            magnet = next((l for l in made.stdout.splitlines() if l.startswith("magnet:?")), None)
            if magnet is None:
                fail(f"no magnet link printed for {name}: {made.stdout}")
            torrent_path = os.path.join(out, name + ".torrent")
            info = lt.torrent_info(torrent_path)
            hashes = info.info_hashes()
            if f"xt=urn:btih:{hashes.v1}" not in magnet:
                fail(f"{kind} {name}: libtorrent's v1 hash {hashes.v1} is not the magnet link's {magnet}")
            if (kind == "hybrid") != hashes.has_v2() or (
                    hashes.has_v2() and f"xt=urn:btmh:1220{hashes.v2}" not in magnet):
                fail(f"{kind} {name}: libtorrent's v2 hash {hashes.v2} does not match the magnet link {magnet}")
            mine = sorted(r for r in WRITE_FILES if r == name or r.startswith(name + "/"))
            fs = info.files()
            theirs = sorted(fs.file_path(i).replace(os.sep, "/") for i in range(fs.num_files())
                            if not fs.file_flags(i) & lt.file_storage.flag_pad_file)
            if theirs != mine:
                fail(f"{kind} {name}: libtorrent lists {theirs}, not {mine}")
            # libtorrent checks the shared files against every hash of the
            # torrent (it would not seed otherwise) ...
            seeder, _ = lt_seeder(f"write-{kind}-{name}", torrent_path, shared)
            del seeder
            # ... and then the project's client seeds it, alone.
            listen = free_port(socket.SOCK_STREAM)
            ours = spawn(
                [client_bin, "--seed", "--torrent", name, "--piece-size-kib", "32", "-u", f"w{kind}{len(name)}",
                 "-s", shared, "-d", os.path.join(out, "dl"), "-c", config, "-t", f"127.0.0.1:{tracker_port}",
                 "-l", f"127.0.0.1:{listen}", "--log", os.path.join(out, "seed.log")] + flag,
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=out,
            )
            read_line(ours, "seeding", 30)
            if kind == "hybrid":
                params = lt.add_torrent_params()
                params.ti = lt.torrent_info(torrent_path)
                got_dir = os.path.join(tmp, f"lt-write-{name}")
                ses, h = lt_leech(f"lt-write-{name}", params, got_dir, listen)
                wait_until(f"libtorrent to download the hybrid {name}", lambda: h.status().is_seeding, 60)
                del ses
                who = "libtorrent"
            else:
                shown = subprocess.run(["transmission-show", torrent_path], capture_output=True, text=True)
                if shown.returncode != 0 or f"Hash: {hashes.v1}" not in shown.stdout:
                    fail(f"transmission-show cannot read {name}.torrent: {shown.stdout} {shown.stderr}")
                got_dir = aria2_get(tmp, f"write-{name}", torrent_path)
                who = "aria2c"
            for rel in mine:
                got = sha256(os.path.join(got_dir, rel))
                if got != want[rel]:
                    fail(f"{who} download of {rel} from our {kind} torrent differs")
            ours.send_signal(signal.SIGTERM)
            ours.wait(timeout=10)
            step(f"{kind} {name}.torrent ({len(mine)} file(s)): libtorrent reads it and seeds it; "
                 f"{who} downloads it byte-identical from `pytorrent --torrent {name} --seed`"
                 + (", transmission-show reads it" if kind == "v1" else ""))


TORRENT_FILES = {  # a multi-file torrent's folder "multi": nested folders, a 0-byte file
    "multi/a.bin": 150_001,
    "multi/sub/b.bin": 70_000,
    "multi/sub/deep/c.txt": 33,
    "multi/sub/empty": 0,
    "multi/z.bin": 40_000,
}


def lt_make(src, kind, piece, tracker):
    """libtorrent's .torrent (bytes) of file or folder `src`, of `kind`
    (v1, hybrid or v2), announcing to `tracker`."""
    fs = lt.file_storage()
    lt.add_files(fs, src)
    flags = {"v1": lt.create_torrent.v1_only, "v2": lt.create_torrent.v2_only, "hybrid": 0}[kind]
    ct = lt.create_torrent(fs, piece, flags=flags)
    ct.add_tracker(tracker)
    lt.set_piece_hashes(ct, os.path.dirname(src))
    return lt.bencode(ct.generate())


def get_torrent(client_bin, tmp, tag, source, tracker_port, extra=(), limit_s=90):
    """`pytorrent --get SOURCE` with our tracker on `tracker_port` (and
    the torrent's trackers, and `extra` arguments); (code, output, dir)."""
    dl = os.path.join(tmp, f"get-{tag}")
    os.makedirs(dl)
    args = [client_bin, "--get", source, "-u", f"g{tag}"[:30], "-d", dl, "-c", os.path.join(tmp, "config.txt"),
            "-t", f"127.0.0.1:{tracker_port}", "-l", "127.0.0.1:0", "--peer-wait", "15",
            "--log", os.path.join(tmp, f"get-{tag}.log")] + list(extra)
    proc = spawn(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        out, _ = proc.communicate(timeout=limit_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        fail(f"pytorrent --get {tag} did not finish within {limit_s} s")
    return proc.returncode, out.decode(errors="replace"), dl


def same_files(tag, got_root, want):
    """Every file of `want` (rel path -> bytes) byte-identical under `got_root`."""
    for rel, data in want.items():
        path = os.path.join(got_root, rel)
        if not os.path.isfile(path) or sha256(path) != hashlib.sha256(data).hexdigest():
            fail(f"{tag}: {rel} missing or different under {got_root}")


def run_torrents(tmp, client_bin, announce, tracker_port):
    step("torrents of every kind: libtorrent seeds, found through our tracker; the project's client downloads")
    src = os.path.join(tmp, "kinds")
    os.makedirs(src)
    want = {}
    for i, (rel, size) in enumerate(TORRENT_FILES.items()):
        path = os.path.join(src, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        want[rel] = random.Random(300 + i).randbytes(size)
        with open(path, "wb") as f:
            f.write(want[rel])
    single = random.Random(299).randbytes(1_000_003)
    with open(os.path.join(src, "single.bin"), "wb") as f:
        f.write(single)
    seeders = []
    magnets = {}
    for kind in ["v1", "hybrid", "v2"]:
        for what in ["single.bin", "multi"]:
            torrent = lt_make(os.path.join(src, what), kind, 32768, announce)
            tpath = os.path.join(tmp, f"{kind}-{what}.torrent")
            with open(tpath, "wb") as f:
                f.write(torrent)
            ses, _ = lt_seeder(f"{kind}-{what}", tpath, src)
            seeders.append(ses)
            info = lt.torrent_info(tpath)
            if kind == "v1" and what == "multi":
                magnets["btih"] = f"magnet:?xt=urn:btih:{info.info_hashes().v1}&tr={announce}"
            tag = f"{kind}-{what.split('.')[0]}"
            code, out, dl = get_torrent(client_bin, tmp, tag, tpath, tracker_port)
            if code != 0:
                fail(f"--get {kind} {what} exited {code}: {out[-1500:]}")
            if what == "multi":
                same_files(tag, dl, want)
            else:
                same_files(tag, dl, {"single.bin": single})
            step(f"{kind} {what}: byte-identical" + (" (nested folders, a 0-byte file)" if what == "multi" else ""))

    # mktorrent's v1 torrent of the folder; libtorrent seeds it.
    mk = os.path.join(tmp, "mk.torrent")
    r = subprocess.run(["mktorrent", "-a", announce, "-l", "15", "-o", mk, os.path.join(src, "multi")],
                       capture_output=True, text=True)
    if r.returncode != 0:
        fail(f"mktorrent: {r.stdout} {r.stderr}")
    ses, _ = lt_seeder("mk", mk, src)
    seeders.append(ses)
    code, out, dl = get_torrent(client_bin, tmp, "mk", mk, tracker_port)
    if code != 0:
        fail(f"--get of mktorrent's torrent exited {code}: {out[-1500:]}")
    same_files("mk", dl, want)
    step("mktorrent v1 folder torrent: byte-identical")

    # A btih magnet with only tr=: the metadata comes from the libtorrent seeder.
    code, out, dl = get_torrent(client_bin, tmp, "btih", magnets["btih"], tracker_port)
    if code != 0:
        fail(f"--get of a btih magnet exited {code}: {out[-1500:]}")
    same_files("btih", dl, want)
    step("btih magnet with only tr=: metadata by ut_metadata, byte-identical")

    # --only: one file of the folder, nothing else kept.
    code, out, dl = get_torrent(client_bin, tmp, "only", os.path.join(tmp, "hybrid-multi.torrent"), tracker_port,
                                extra=["--only", "sub/**.bin"])
    if code != 0:
        fail(f"--get --only exited {code}: {out[-1500:]}")
    same_files("only", dl, {"multi/sub/b.bin": want["multi/sub/b.bin"]})
    left = sorted(os.path.relpath(os.path.join(d, f), dl) for d, _, fs in os.walk(dl) for f in fs)
    if left != ["multi/sub/b.bin"]:
        fail(f"--only left {left}")
    step("--only 'sub/**.bin': that file alone, byte-identical")
    del seeders

    run_hostile(tmp, client_bin, tracker_port)


def bencode(v):
    if isinstance(v, int):
        return b"i%de" % v
    if isinstance(v, (bytes, str)):
        b = v.encode() if isinstance(v, str) else v
        return b"%d:%s" % (len(b), b)
    if isinstance(v, list):
        return b"l" + b"".join(bencode(x) for x in v) + b"e"
    return b"d" + b"".join(bencode(k) + bencode(v[k]) for k in sorted(v, key=lambda k: k.encode() if isinstance(k, str) else k)) + b"e"


def run_hostile(tmp, client_bin, tracker_port):
    step("hostile multi-file torrents: nothing written outside the torrent's folder")
    outside = os.path.join(tmp, "outside")
    os.makedirs(outside)
    for tag, paths in [("dotdot", [["..", "..", "outside", "x"]]), ("absolute", [["/tmp", "x"]]),
                       ("slash", [["a/../../x"]])]:
        info = {"name": "evil", "piece length": 16384, "pieces": b"\0" * 20,
                "files": [{"length": 10, "path": p} for p in paths]}
        t = os.path.join(tmp, f"evil-{tag}.torrent")
        with open(t, "wb") as f:
            f.write(bencode({"announce": "udp://127.0.0.1:9", "info": info}))
        code, out, dl = get_torrent(client_bin, tmp, f"evil-{tag}", t, tracker_port, limit_s=30)
        if code == 0 or "path" not in out.lower() and "name" not in out.lower():
            fail(f"hostile torrent {tag} was not refused clearly (exit {code}): {out[-800:]}")
    # A symlinked folder where the torrent's folder goes: the download
    # would finish into it; it lands beside it instead.
    seed_dir = os.path.join(tmp, "evil-seed")
    os.makedirs(os.path.join(seed_dir, "evil2", "sub"))
    data = random.Random(77).randbytes(50_000)
    with open(os.path.join(seed_dir, "evil2", "sub", "f.bin"), "wb") as f:
        f.write(data)
    tpath = os.path.join(tmp, "evil2.torrent")
    fs = lt.file_storage()
    lt.add_files(fs, os.path.join(seed_dir, "evil2"))
    ct = lt.create_torrent(fs, 16384, flags=lt.create_torrent.v1_only)
    lt.set_piece_hashes(ct, seed_dir)
    with open(tpath, "wb") as f:
        f.write(lt.bencode(ct.generate()))
    ses, port = lt_seeder("evil2", tpath, seed_dir)
    dl = os.path.join(tmp, "get-evil-link")
    os.makedirs(dl)
    os.symlink(outside, os.path.join(dl, "evil2"))
    args = [client_bin, "--get", tpath, "-u", "gevillink", "-d", dl, "-c", os.path.join(tmp, "config.txt"),
            "-t", f"127.0.0.1:{tracker_port}", "-l", "127.0.0.1:0", "--peer", f"127.0.0.1:{port}",
            "--log", os.path.join(tmp, "get-evil-link.log")]
    r = subprocess.run(args, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    if os.listdir(outside):
        fail(f"a download wrote through a symlinked folder: {os.listdir(outside)}")
    if r.returncode != 0 or sha256(os.path.join(dl, "evil2.1", "sub", "f.bin")) != hashlib.sha256(data).hexdigest():
        fail(f"the download beside a symlinked folder failed: {r.stdout[-800:]} {r.stderr[-800:]}")
    del ses
    step("hostile torrents: '..', absolute and separator paths refused; a symlinked folder is not written through")


def run_mse(tmp, mse_bin):
    step("MSE/PE: encrypted handshakes with libtorrent forcing RC4, both directions")
    d = os.path.join(tmp, "mse")
    os.makedirs(d)
    path = os.path.join(d, "enc.bin")
    with open(path, "wb") as f:
        f.write(random.Random(55).randbytes(200_000))
    fs = lt.file_storage()
    lt.add_files(fs, path)
    ct = lt.create_torrent(fs, 32768, flags=lt.create_torrent.v1_only)
    lt.set_piece_hashes(ct, d)
    info = lt.torrent_info(lt.bencode(ct.generate()))
    ses = session("mse")
    ses.apply_settings({"out_enc_policy": lt.enc_policy.forced, "in_enc_policy": lt.enc_policy.forced,
                        "allowed_enc_level": lt.enc_level.rc4,
                        "enable_outgoing_utp": False, "enable_incoming_utp": False})
    h = add(ses, info, d)
    wait_until("the encrypted seeder to check its file", lambda: h.status().is_seeding, 30)
    ih = str(info.info_hashes().v1)
    r = subprocess.run([mse_bin, "connect", f"127.0.0.1:{ses.listen_port()}", ih],
                       capture_output=True, text=True, timeout=30)
    if r.returncode != 0 or "ok initiator rc4" not in r.stdout:
        fail(f"MSE initiator against libtorrent: {r.stdout} {r.stderr}")
    step("MSE/PE: our initiator -> libtorrent (forced): RC4 selected, handshake through RC4")
    listener = spawn([mse_bin, "listen", ih], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    port = int(listener.stdout.readline().split()[1])
    h.connect_peer(("127.0.0.1", port))
    try:
        out, err = listener.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        listener.kill()
        fail("MSE receiver: libtorrent did not connect within 30 s")
    if listener.returncode != 0 or "ok receiver rc4" not in out:
        fail(f"MSE receiver with libtorrent: {out} {err}")
    step("MSE/PE: libtorrent (forced) -> our receiver: RC4, its handshake as initial payload")
    del ses
    print("interop: 13 passed, 0 failed")


if __name__ == "__main__":
    signal.signal(signal.SIGALRM, lambda *_: fail(f"interop run exceeded {OVERALL_LIMIT_S} s"))
    signal.alarm(OVERALL_LIMIT_S)
    main()
