#!/usr/bin/env bash
# Side-by-side BEP 15 benchmark: pytorrent-tracker, aquatic_udp and Debian's
# opentracker answer the same load generator (aquatic_udp_load_test), in
# alternating rounds, each tracker pinned to CPU 0 and the load generator to
# CPU 1. Prints responses per second and resident memory for each tracker,
# the median over the rounds, and the ratios, in one run.
#
#   benches/tracker_bep15.sh [--rounds N] [--duration SECS] [--peers N] [--torrents N]
#
# Installs what is missing: aquatic_udp_load_test and aquatic_udp with
# `cargo install`, opentracker with apt-get. Everything runs on 127.0.0.1;
# each run stops by itself after --duration seconds.
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=3
DURATION=30 # seconds per run; the first 10 are warm-up, not counted
PEERS=1000000
TORRENTS=1000000 # aquatic_udp_load_test's default
while [ $# -gt 0 ]; do
  case "$1" in
    --rounds) ROUNDS=$2; shift 2 ;;
    --duration) DURATION=$2; shift 2 ;;
    --peers) PEERS=$2; shift 2 ;;
    --torrents) TORRENTS=$2; shift 2 ;;
    *) echo "usage: $0 [--rounds N] [--duration SECS] [--peers N] [--torrents N]" >&2; exit 2 ;;
  esac
done
# The load test reports every 5 s; it summarises whole 5 s periods.
DURATION=$(( (DURATION + 4) / 5 * 5 ))
[ "$DURATION" -ge 15 ] || DURATION=15
SUMMARIZE=$(( DURATION - 10 ))

say() { printf '==> %s\n' "$*" >&2; }

# --- tools ----------------------------------------------------------------
export PATH="$HOME/.cargo/bin:$PATH"
if ! command -v aquatic_udp_load_test >/dev/null; then
  say "cargo install aquatic_udp_load_test"
  cargo install --locked aquatic_udp_load_test
fi
if ! command -v aquatic_udp >/dev/null; then
  # Its default "prometheus" feature pulls metrics 0.22.3, which current
  # rustc rejects (E0521); the tracker itself does not need it.
  say "cargo install aquatic_udp (without the prometheus feature)"
  cargo install --locked aquatic_udp --no-default-features --features mimalloc
fi
if ! command -v opentracker >/dev/null; then
  say "apt-get install opentracker"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq opentracker
fi
say "cargo build --release --bin pytorrent-tracker"
cargo build --release --bin pytorrent-tracker >&2
PYT="$PWD/target/release/pytorrent-tracker"

work=$(mktemp -d)
chmod 755 "$work" # opentracker drops to user nobody and chroots here
tracker_pid=""
cleanup() {
  if [ -n "$tracker_pid" ]; then kill "$tracker_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

free_port() {
  python3 -c 'import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# Waits until a BEP 15 connect to 127.0.0.1:$1 is answered (10 s at most).
wait_ready() {
  python3 - "$1" <<'EOF'
import socket, struct, sys, time
port = int(sys.argv[1])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(0.2)
deadline = time.time() + 10
while time.time() < deadline:
    s.sendto(struct.pack(">QII", 0x41727101980, 0, 7), ("127.0.0.1", port))
    try:
        data = s.recv(64)
        if len(data) == 16 and struct.unpack(">II", data[:8]) == (0, 7):
            sys.exit(0)
    except OSError:
        pass
sys.exit("tracker not answering a BEP 15 connect on port %d" % port)
EOF
}

# One announce to check the tracker records peers; retried for up to 60 s,
# since opentracker loads its whitelist in the background after starting.
check_announce() {
  python3 - "$1" "$FIRST_HASH" <<'EOF'
import socket, struct, sys, time
port = int(sys.argv[1])
info_hash = bytes.fromhex(sys.argv[2])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(1)
deadline = time.time() + 60
while True:
    try:
        s.sendto(struct.pack(">QII", 0x41727101980, 0, 1), ("127.0.0.1", port))
        conn = struct.unpack(">IIQ", s.recv(64))[2]
        s.sendto(struct.pack(">QII20s20sQQQIIIiH", conn, 1, 2, info_hash, b"\x02" * 20, 0, 0, 0, 2, 0, 0, -1, 1), ("127.0.0.1", port))
        data = s.recv(2048)
        if struct.unpack(">I", data[:4])[0] == 1 and len(data) >= 20:
            sys.exit(0)
    except OSError:
        data = b"(no reply)"
    if time.time() > deadline:
        sys.exit("announce refused: %r" % data[8:])
    time.sleep(0.5)
EOF
}

# Debian builds opentracker in "private" mode: it serves only whitelisted
# info hashes (README.Debian; "public" mode needs a rebuild, and Debian's
# mirror here has no source packages). The load generator's hashes are
# deterministic (SmallRng seeded with 0xc3aa8be617b3acce, rand 0.8.5), so a
# helper built with the same crate writes them all to a whitelist.
helper="$PWD/target/bench-lthashes"
mkdir -p "$helper/src"
cat >"$helper/Cargo.toml" <<'TOML'
[package]
name = "lthashes"
version = "0.0.0"
edition = "2021"
[dependencies]
rand = { version = "=0.8.5", default-features = false, features = ["small_rng", "std"] }
[workspace]
TOML
cat >"$helper/src/main.rs" <<'RUST'
// The info hashes aquatic_udp_load_test 0.9.0 generates (lib.rs,
// InfoHashDist::new), one hex line each.
use rand::{rngs::SmallRng, Rng, SeedableRng};
use std::io::Write;
fn main() {
    let n: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).expect("N");
    let mut rng = SmallRng::seed_from_u64(0xc3aa8be617b3acce);
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    for _ in 0..n {
        let mut bytes = [0u8; 20];
        for b in bytes.iter_mut() {
            *b = rng.gen();
        }
        for b in bytes {
            write!(out, "{b:02x}").unwrap();
        }
        writeln!(out).unwrap();
    }
}
RUST
say "writing the load generator's $TORRENTS info hashes (opentracker's whitelist)"
cargo run -q --release --manifest-path "$helper/Cargo.toml" -- "$TORRENTS" >"$work/whitelist.txt"
chmod 644 "$work/whitelist.txt"
echo "access.whitelist whitelist.txt" >"$work/opentracker.conf"
FIRST_HASH=$(head -1 "$work/whitelist.txt")

rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }

# run_one NAME: starts tracker NAME on a fresh port, drives it, prints
# "NAME responses/s rss_idle_kib rss_end_kib bt_peers".
run_one() {
  local name=$1 port stats="" out="$work/$1.load" peers="-"
  port=$(free_port)
  case "$name" in
    pytorrent)
      stats="$work/pyt-stats.json"
      # Caps raised: the load generator is one host announcing a million
      # peers, which the default per-host cap (1,000) would refuse.
      taskset -c 0 "$PYT" --bind "127.0.0.1:$port" --quiet --stats "$stats" \
        --max-per-ip 100000000 --max-bt-peers 100000000 --max-torrents 100000000 \
        >"$work/pyt.out" 2>&1 &
      ;;
    aquatic_udp)
      cat >"$work/aquatic.toml" <<EOF
socket_workers = 1
log_level = "error"
[network]
address = "127.0.0.1:$port"
EOF
      taskset -c 0 aquatic_udp -c "$work/aquatic.toml" >"$work/aquatic.out" 2>&1 &
      ;;
    opentracker)
      # It refuses to run as root; by default it becomes nobody, chrooted
      # to -d, where it reads the whitelist.
      taskset -c 0 opentracker -i 127.0.0.1 -P "$port" -p "$port" -d "$work" -f "$work/opentracker.conf" \
        >"$work/ot.out" 2>&1 &
      ;;
  esac
  tracker_pid=$!
  wait_ready "$port"
  if ! check_announce "$port"; then
    echo "$name refuses announces; see $work" >&2
    exit 1
  fi
  local idle
  idle=$(rss_kib "$tracker_pid")
  cat >"$work/load.toml" <<EOF
server_address = "127.0.0.1:$port"
workers = 1
duration = $DURATION
summarize_last = $SUMMARIZE
extra_statistics = false
[requests]
number_of_torrents = $TORRENTS
number_of_peers = $PEERS
EOF
  taskset -c 1 aquatic_udp_load_test -c "$work/load.toml" >"$out" 2>&1
  local rate end
  rate=$(awk '/^Average responses per second:/ {print $5}' "$out")
  end=$(rss_kib "$tracker_pid")
  if [ -n "$stats" ]; then
    kill -TERM "$tracker_pid"
    wait "$tracker_pid" || true
    peers=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["bep15"]["peers"])' "$stats")
  else
    kill -TERM "$tracker_pid"
    wait "$tracker_pid" 2>/dev/null || true
  fi
  tracker_pid=""
  [ -n "$rate" ] || { echo "no result from the load test against $name:" >&2; tail -20 "$out" >&2; exit 1; }
  echo "$name $rate $idle $end $peers"
}

say "machine: $(nproc) CPUs, $(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo), load average $(cut -d' ' -f1-3 /proc/loadavg)"
say "load: aquatic_udp_load_test, 1 worker on CPU 1; $PEERS peers over $TORRENTS torrents; ${DURATION} s a run, last $SUMMARIZE s counted; $ROUNDS rounds"
say "versions: $("$PYT" --version), $(cargo install --list | grep -E '^aquatic_udp v' | tr -d :), opentracker $(dpkg-query -W -f='${Version}' opentracker 2>/dev/null)"
results="$work/results"
: >"$results"
for round in $(seq 1 "$ROUNDS"); do
  for name in pytorrent aquatic_udp opentracker; do
    line=$(run_one "$name")
    say "round $round: $line"
    echo "$line" >>"$results"
  done
done

python3 - "$results" <<'EOF'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1]) if l.strip()]
by = {}
for name, rate, idle, end, peers in rows:
    by.setdefault(name, []).append((float(rate), int(idle), int(end), peers))
med = {}
print()
print(f"{'tracker':<13} {'responses/s (median)':>21}  {'rounds':<30} {'RSS idle':>9} {'RSS end':>9}  RSS per peer")
for name in ("pytorrent", "aquatic_udp", "opentracker"):
    runs = by[name]
    rates = [r[0] for r in runs]
    m = statistics.median(rates)
    med[name] = m
    end = statistics.median(r[2] for r in runs)
    idle = statistics.median(r[1] for r in runs)
    per_peer = ""
    if runs[0][3] != "-":
        # Per run (RSS growth over the peers that run left), then the median.
        each = [((r[2] - r[1]) * 1024 / int(r[3]), int(r[3])) for r in runs]
        per_peer = "median %.0f B; runs: %s" % (
            statistics.median(b for b, _ in each),
            " / ".join(f"{b:.0f} B at {p:,} peers" for b, p in each))
    print(f"{name:<13} {m:>21,.0f}  {' / '.join(f'{r:,.0f}' for r in rates):<30} "
          f"{idle / 1024:>7.1f}Mi {end / 1024:>7.1f}Mi  {per_peer}")
print()
print(f"pytorrent / aquatic_udp: {med['pytorrent'] / med['aquatic_udp']:.2f}x   (target >= 1.0)")
print(f"pytorrent / opentracker: {med['pytorrent'] / med['opentracker']:.2f}x   (target >= 1.5)")
EOF
