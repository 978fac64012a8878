#!/usr/bin/python3
"""BitTorrent seeding benchmark: one file seeded to two libtorrent leechers
at once, by the project's client (`pytorrent --seed --torrent NAME`) and, in
the same run and with the same .torrent, by a libtorrent seeder. The two
seeders take turns for ROUNDS rounds (fresh leechers each time); prints each
round, the medians, and the load average.

Usage: benches/bt_seed.py CLIENT_BIN [SIZE_MIB] [PIECE_KIB] [ROUNDS]
       (defaults 512, 1024, 3; use the release binary)
Everything runs on 127.0.0.1 in a temp directory removed at the end; uTP is
off (the project's client speaks TCP only).
"""

import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "interop"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from run import free_port, read_line, sha256  # noqa: E402  (the interop tests' helpers)
from bt_v2 import COMMON, write_random  # noqa: E402  (libtorrent on loopback, TCP only)

SEEDER = COMMON + r'''
torrent, save = sys.argv[1], sys.argv[2]
ses = session()
h = add(ses, torrent, save)
while not h.status().is_seeding:
    time.sleep(0.1)
print(ses.listen_port(), flush=True)
sys.stdin.read()
'''

# Two leechers in one process (two sessions), both connected to the seeder
# at once; prints the seconds until both are done.
LEECHERS = COMMON + r'''
torrent, port, a, b = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
pairs = [(session(), d) for d in (a, b)]
start = time.monotonic()
hs = [add(s, torrent, d) for s, d in pairs]
for h in hs:
    h.connect_peer(("127.0.0.1", port))
deadline = start + 600
while not all(h.status().is_seeding for h in hs) and time.monotonic() < deadline:
    time.sleep(0.02)
print("%.3f" % (time.monotonic() - start) if all(h.status().is_seeding for h in hs) else "timeout", flush=True)
'''


def leech(tmp, torrent, port, tag, want, name):
    dirs = [os.path.join(tmp, f"{tag}-{i}") for i in (1, 2)]
    for d in dirs:
        os.makedirs(d)
    out = subprocess.run([sys.executable, "-c", LEECHERS, torrent, str(port)] + dirs,
                         capture_output=True, text=True, timeout=900).stdout.strip()
    if out == "timeout" or not all(sha256(os.path.join(d, name)) == want for d in dirs):
        sys.exit(f"{tag}: the leechers did not finish with the right bytes ({out})")
    for d in dirs:
        shutil.rmtree(d)
    return float(out)


def main():
    client = os.path.abspath(sys.argv[1])
    size = int(sys.argv[2]) << 20 if len(sys.argv) > 2 else 512 << 20
    piece_kib = int(sys.argv[3]) if len(sys.argv) > 3 else 1024
    rounds = int(sys.argv[4]) if len(sys.argv) > 4 else 3
    import libtorrent as lt
    tmp = tempfile.mkdtemp(prefix="pytorrent-seedbench-")
    procs = []
    try:
        shared = os.path.join(tmp, "shared")
        os.makedirs(shared)
        name = "seed.bin"
        path = os.path.join(shared, name)
        write_random(path, size)
        want = sha256(path)
        tracker = subprocess.Popen([os.path.join(os.path.dirname(client), "pytorrent-tracker"),
                                    "--bind", "127.0.0.1:0"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        procs.append(tracker)
        banner = read_line(tracker, "listening on udp", 15)
        tracker_addr = banner.split("listening on udp ")[1].split()[0]
        config = os.path.join(tmp, "config.txt")
        open(config, "w").close()
        listen = free_port(socket.SOCK_STREAM)
        own = subprocess.Popen([client, "--seed", "--torrent", name, "--piece-size-kib", str(piece_kib),
                                "-u", "bench", "-s", shared, "-d", os.path.join(tmp, "dl"), "-c", config,
                                "-t", tracker_addr, "-l", f"127.0.0.1:{listen}",
                                "--log", os.path.join(tmp, "own.log")],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                               cwd=shared)
        procs.append(own)
        read_line(own, "seeding", 120)
        torrent = os.path.join(shared, name + ".torrent")
        lt_seed = subprocess.Popen([sys.executable, "-c", SEEDER, torrent, shared],
                                   stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        procs.append(lt_seed)
        lt_port = int(lt_seed.stdout.readline())
        print(f"{size >> 20} MiB, {piece_kib} KiB pieces, 2 libtorrent {lt.__version__} leechers at once, "
              f"{rounds} rounds, load average before {os.getloadavg()[0]:.2f}")
        times = {"pytorrent": [], "libtorrent": []}
        for r in range(rounds):
            order = [("pytorrent", listen), ("libtorrent", lt_port)]
            for who, port in order if r % 2 == 0 else order[::-1]:
                secs = leech(tmp, torrent, port, f"{who}{r}", want, name)
                times[who].append(secs)
                print(f"round {r + 1}: {who:10} seeder {secs:6.2f} s  {2 * size / secs / 1e6:7.1f} MB/s out")
        med = {k: statistics.median(v) for k, v in times.items()}
        for who, secs in med.items():
            print(f"median {who:10} seeder {secs:6.2f} s  {2 * size / secs / 1e6:7.1f} MB/s out")
        print(f"speed ratio pytorrent/libtorrent seeder: {med['libtorrent'] / med['pytorrent']:.2f}x; "
              f"load average after {os.getloadavg()[0]:.2f}")
    finally:
        for p in procs:
            p.kill()
            p.wait()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
