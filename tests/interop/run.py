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

Usage: run.py TRACKER_BIN CLIENT_BIN   (exit 0 only if every check passed)
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

OVERALL_LIMIT_S = 300
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
    buf = b""
    while time.monotonic() < deadline:
        chunk = proc.stdout.read()
        if chunk:
            buf += chunk
            for line in buf.decode(errors="replace").splitlines():
                if want in line:
                    return line
        elif proc.poll() is not None:
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
    if len(sys.argv) != 3:
        fail("usage: run.py TRACKER_BIN CLIENT_BIN")
    tracker_bin, client_bin = (os.path.abspath(a) for a in sys.argv[1:])
    tmp = tempfile.mkdtemp(prefix="pytorrent-interop-")
    try:
        run(tmp, tracker_bin, client_bin)
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
    aria_dir = os.path.join(tmp, "aria2")
    os.makedirs(aria_dir)
    aria = spawn(
        ["aria2c", "--enable-dht=true", f"--dht-listen-port={free_port(socket.SOCK_DGRAM)}",
         f"--dht-file-path={os.path.join(tmp, 'dht.dat')}",
         "--bt-enable-lpd=false", "--enable-peer-exchange=false", "--seed-time=0",
 f"--listen-port={free_port(socket.SOCK_STREAM)}", "--summary-interval=0", "--console-log-level=warn",
         "--bt-stop-timeout=90", f"--dir={aria_dir}", torrent_path],
        stdout=open(os.path.join(tmp, "aria2.log"), "wb"), stderr=subprocess.STDOUT,
    )
    try:
        code = aria.wait(timeout=100)
    except subprocess.TimeoutExpired:
        aria.kill()
        fail("aria2c did not finish within 100 s:\n" + open(os.path.join(tmp, "aria2.log")).read()[-3000:])
    if code != 0:
        fail(f"aria2c exited {code}:\n" + open(os.path.join(tmp, "aria2.log")).read()[-3000:])
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
    print("interop: 5 passed, 0 failed")


if __name__ == "__main__":
    signal.signal(signal.SIGALRM, lambda *_: fail(f"interop run exceeded {OVERALL_LIMIT_S} s"))
    signal.alarm(OVERALL_LIMIT_S)
    main()
