#!/usr/bin/env bash
# Memory per BitTorrent peer of one pytorrent-tracker binary under the load of
# benches/tracker_bep15.sh (aquatic_udp_load_test, 1,000,000 peers over
# 1,000,000 torrents, tracker on CPU 0, load on CPU 1), without the other
# trackers: for comparing two builds of ours, alternated.
#
#   benches/tracker_bep15_memory.sh TRACKER_BINARY [SECS (30)]
#
# Needs aquatic_udp_load_test (cargo install --locked aquatic_udp_load_test).
# Prints the rate, RSS at start and end, peers and torrents held at the end
# (from --stats) and (end - start) / peers.
set -euo pipefail
bin=$1; dur=${2:-30}
work=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
taskset -c 0 "$bin" --bind "127.0.0.1:$port" --quiet --stats "$work/stats.json" \
  --max-per-ip 100000000 --max-bt-peers 100000000 --max-torrents 100000000 >"$work/out" 2>&1 &
pid=$!
sleep 1
idle=$(awk '/^VmRSS/ {print $2}' /proc/$pid/status)
cat >"$work/load.toml" <<EOT
server_address = "127.0.0.1:$port"
workers = 1
duration = $dur
summarize_last = $((dur-10))
extra_statistics = false
[requests]
number_of_torrents = 1000000
number_of_peers = 1000000
EOT
taskset -c 1 ~/.cargo/bin/aquatic_udp_load_test -c "$work/load.toml" >"$work/load.out" 2>&1
rate=$(awk '/^Average responses per second:/ {print $5}' "$work/load.out")
end=$(awk '/^VmRSS/ {print $2}' /proc/$pid/status)
kill -TERM $pid; wait $pid || true
peers=$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(d["bep15"]["peers"], d["bep15"]["torrents"])' "$work/stats.json")
set -- $peers
python3 -c "import sys; i,e,p,t,r=map(float,sys.argv[1:]); print(f'rate {r:.0f}/s idle {i:.0f} KiB end {e:.0f} KiB peers {p:.0f} torrents {t:.0f} -> {(e-i)*1024/p:.1f} B/peer')" $idle $end $1 $2 ${rate:-0}
rm -rf "$work"
