#!/usr/bin/env bash
# The machine's ceilings, beside the benchmarks: SHA-256, SHA-1 (one core), loopback TCP, page-cache write.
# Usage: benches/ceilings.sh   (prints each figure; run it beside a benchmark, in the same session)
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
for alg in sha256 sha1; do
  openssl speed -evp $alg -bytes 1048576 -seconds 3 2>/dev/null | awk -v a=$alg '/^'$alg'/ {printf "%s (openssl, 1 MiB blocks, one core): %.0f MB/s\n", a, $NF/1000}'
done
/usr/bin/python3 - <<'PY'
import socket, threading, time
N = 4 << 30
srv = socket.socket(); srv.bind(("127.0.0.1", 0)); srv.listen(1)
port = srv.getsockname()[1]
def sink():
    c, _ = srv.accept(); buf = bytearray(1 << 20); mv = memoryview(buf); got = 0
    while got < N:
        n = c.recv_into(mv)
        if not n: break
        got += n
t = threading.Thread(target=sink); t.start()
s = socket.create_connection(("127.0.0.1", port)); data = b"\0" * (1 << 20)
start = time.monotonic(); sent = 0
while sent < N:
    s.sendall(data); sent += len(data)
s.close(); t.join(); secs = time.monotonic() - start
print(f"loopback TCP (one stream, 1 MiB writes): {N / secs / 1e6:.0f} MB/s")
PY
f=$(mktemp -p /work); start=$(date +%s.%N); dd if=/dev/zero of=$f bs=1M count=1024 status=none; end=$(date +%s.%N); rm -f $f
echo "page-cache write (dd 1 GiB, 1 MiB blocks): $(echo "1073.741824 / ($end - $start)" | bc -l | cut -d. -f1) MB/s"
