#!/usr/bin/env bash
# Cross-checks ipcbench against tools people already trust, on this machine,
# on loopback, pinned the same way: sockperf ping-pong (TCP and UDP,
# --full-rtt) against ipcbench's tcp/udp sync latency at the same message
# size, and iperf3 (one TCP stream) against ipcbench's tcp sync throughput.
# Beside each sockperf ping-pong, `ipcbench bare` runs the bare reference
# loop of the same kernel object (tcp, udp: plain send/recv, no adapter) at
# the same size and CPUs: it must come within 10% of sockperf's round trip
# (PASS/FAIL in the table), or the reference the adapter_ratio divides by is
# off.
# Under load: sockperf's under-load mode (TCP, --mps messages/s, every one
# answered, --full-rtt) against ipcbench's tcp async latency in the open
# loop at the same rate (--rate): their p50 must agree within 0.77x-1.3x.
# Three rounds, each tool and ipcbench back to back (interleaved), then a
# table of medians: tool, figure, the tool's figure, ipcbench's, the ratio.
#
# Usage: scripts/crosscheck.sh            (installs sockperf and iperf3 if missing)
#   IPCBENCH_CROSSCHECK_ROUNDS=3  IPCBENCH_CROSSCHECK_SECONDS=3  (per tool run)
#   IPCBENCH_CROSSCHECK_SIZE=64   IPCBENCH_CROSSCHECK_STREAM_SIZE=131072
#   IPCBENCH_CROSSCHECK_RATE=10000  (messages/s of the under-load row)
#   IPCBENCH_BUILD_DIR=build      IPCBENCH_BINARY=path  (an ipcbench built elsewhere: no build)
set -euo pipefail
cd "$(dirname "$0")/.."

rounds="${IPCBENCH_CROSSCHECK_ROUNDS:-3}"
seconds="${IPCBENCH_CROSSCHECK_SECONDS:-3}"
size="${IPCBENCH_CROSSCHECK_SIZE:-64}"
stream="${IPCBENCH_CROSSCHECK_STREAM_SIZE:-131072}"
rate="${IPCBENCH_CROSSCHECK_RATE:-10000}"
python=/usr/bin/python3

scripts/deps
for tool in sockperf iperf3; do
  if ! command -v "$tool" >/dev/null; then
    echo "crosscheck: installing $tool (Debian package)"
    sudo_cmd=()
    [ "$(id -u)" -ne 0 ] && sudo_cmd=(sudo)
    DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -q --no-install-recommends "$tool" >/dev/null
  fi
done
if [ -n "${IPCBENCH_BINARY:-}" ]; then
  ipcbench="$IPCBENCH_BINARY"
else
  build="${IPCBENCH_BUILD_DIR:-build}"
  cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release >/dev/null
  cmake --build "$build" -j"$(nproc)" --target ipcbench >/dev/null
  ipcbench="$build/bin/ipcbench"
fi
if ! "$ipcbench" bare --help >/dev/null 2>&1; then
  echo "crosscheck: $ipcbench has no 'bare' command (bench/cli/cli.cpp must call add_bare_command)" >&2
  exit 1
fi

# The CPUs ipcbench's cross-cpu placement uses: the first two allowed.
read -r cpu_a cpu_b < <("$python" -c 'import os; c = sorted(os.sched_getaffinity(0)); print(c[0], c[1] if len(c) > 1 else c[0])')
[ "$cpu_a" = "$cpu_b" ] && echo "crosscheck: only one CPU available: runner and peer share CPU $cpu_a"

work=$(mktemp -d)
servers=()
cleanup() {
  for pid in "${servers[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

free_port() { "$python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# The peer side of each tool, pinned to the peer's CPU, for the whole check.
tcp_port=$(free_port)
udp_port=$(free_port)
iperf_port=$(free_port)
taskset -c "$cpu_b" sockperf server --tcp -i 127.0.0.1 -p "$tcp_port" >"$work/sockperf-tcp.log" 2>&1 &
servers+=($!)
taskset -c "$cpu_b" sockperf server -i 127.0.0.1 -p "$udp_port" >"$work/sockperf-udp.log" 2>&1 &
servers+=($!)
taskset -c "$cpu_b" iperf3 -s -B 127.0.0.1 -p "$iperf_port" >"$work/iperf3.log" 2>&1 &
servers+=($!)
sleep 1
for pid in "${servers[@]}"; do
  if ! kill -0 "$pid" 2>/dev/null; then
    echo "crosscheck: a tool's server did not start:" >&2
    cat "$work"/*.log >&2
    exit 1
  fi
done

sockperf_out_p50() {  # prints the p50 round trip (ns) of the sockperf output in $work/sp.out
  "$python" - "$work/sp.out" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
m = re.search(r"percentile 50\.000 =\s*([0-9.]+)", text)
if not m:
    sys.exit("crosscheck: no p50 in sockperf's output:\n" + text)
print(float(m.group(1)) * 1000)  # usec -> ns
PY
}

sockperf_p50() {  # $1: extra flags (--tcp or nothing); prints the p50 round trip in ns
  taskset -c "$cpu_a" sockperf ping-pong $1 -i 127.0.0.1 -p "$2" -m "$size" -t "$seconds" --full-rtt \
    >"$work/sp.out" 2>&1 || { cat "$work/sp.out" >&2; return 1; }
  sockperf_out_p50
}

sockperf_load_p50() {  # prints sockperf under-load's p50 round trip in ns, TCP at $rate msg/s
  taskset -c "$cpu_a" sockperf under-load --tcp -i 127.0.0.1 -p "$tcp_port" -m "$size" -t "$seconds" \
    --mps "$rate" --reply-every 1 --full-rtt >"$work/sp.out" 2>&1 || { cat "$work/sp.out" >&2; return 1; }
  sockperf_out_p50
}

ipcbench_open_loop_p50() {  # tcp async latency, open loop at $rate msg/s; prints p50 ns
  "$ipcbench" run --mechanisms tcp --modes async --patterns latency --sizes "$size" --rate "$rate" \
    --cpus "$cpu_a,$cpu_b" --min-time "$seconds" --no-calibration --out "$work/ib.json" \
    >/dev/null 2>"$work/ib.err" || { cat "$work/ib.err" >&2; return 1; }
  "$python" -c 'import json,sys; print(json.load(open(sys.argv[1]))["benchmarks"][0]["p50_ns"])' \
    "$work/ib.json"
}

iperf_bps() {  # prints bytes/s received
  taskset -c "$cpu_a" iperf3 -c 127.0.0.1 -p "$iperf_port" -l "$stream" -t "$seconds" -J \
    >"$work/iperf.json" 2>&1 || { cat "$work/iperf.json" >&2; return 1; }
  "$python" -c 'import json,sys; d=json.load(open(sys.argv[1])); print(d["end"]["sum_received"]["bits_per_second"] / 8)' "$work/iperf.json"
}

ipcbench_figure() {  # $1 mechanism, $2 pattern, $3 size, $4 field
  "$ipcbench" run --mechanisms "$1" --modes sync --patterns "$2" --sizes "$3" \
    --cpus "$cpu_a,$cpu_b" --min-time "$seconds" --no-calibration --out "$work/ib.json" \
    >/dev/null 2>"$work/ib.err" || { cat "$work/ib.err" >&2; return 1; }
  "$python" -c 'import json,sys; d=json.load(open(sys.argv[1])); print(d["benchmarks"][0][sys.argv[2]])' \
    "$work/ib.json" "$4"
}

bare_p50() {  # $1 family (tcp, udp); prints the bare loop's p50 round trip in ns
  "$ipcbench" bare --family "$1" --pattern latency --size "$size" --cpus "$cpu_a,$cpu_b" \
    --seconds "$seconds" >"$work/bare.json" 2>"$work/bare.err" ||
    { cat "$work/bare.err" >&2; return 1; }
  "$python" -c 'import json,sys; print(json.load(open(sys.argv[1]))["p50_ns"])' "$work/bare.json"
}

record() {  # $1 figure, $2 who, then the command that prints the value; a failure ends the check
  local key=$1 who=$2 value
  shift 2
  value=$("$@")
  echo "$key $who $value" >>"$work/figures"
}

: >"$work/figures"
for round in $(seq 1 "$rounds"); do
  echo "crosscheck: round $round of $rounds"
  record tcp_rtt sockperf sockperf_p50 --tcp "$tcp_port"
  record tcp_rtt bare bare_p50 tcp
  record tcp_rtt ipcbench ipcbench_figure tcp latency "$size" p50_ns
  record udp_rtt sockperf sockperf_p50 "" "$udp_port"
  record udp_rtt bare bare_p50 udp
  record udp_rtt ipcbench ipcbench_figure udp latency "$size" p50_ns
  record tcp_load sockperf sockperf_load_p50
  record tcp_load ipcbench ipcbench_open_loop_p50
  record tcp_stream iperf3 iperf_bps
  record tcp_stream ipcbench ipcbench_figure tcp throughput "$stream" bytes_per_second
done

"$python" - "$work/figures" "$size" "$stream" "$rounds" "$cpu_a" "$cpu_b" "$rate" <<'PY'
import statistics, sys
path, size, stream, rounds, a, b, rate = sys.argv[1:]
fig = {}
for line in open(path):
    key, tool, value = line.split()
    fig.setdefault((key, tool), []).append(float(value))
med = {k: statistics.median(v) for k, v in fig.items()}
# (tool, figure, key, ours: ipcbench's adapter or its bare loop, scale,
#  the range ours / tool must fall in, or None)
rows = [
    ("sockperf", f"TCP round trip p50, {size} B (us)", "tcp_rtt", "ipcbench", 1e3, None),
    ("sockperf", f"TCP round trip p50, {size} B (us), bare loop", "tcp_rtt", "bare", 1e3,
     (0, 1.10)),
    ("sockperf", f"UDP round trip p50, {size} B (us)", "udp_rtt", "ipcbench", 1e3, None),
    ("sockperf", f"UDP round trip p50, {size} B (us), bare loop", "udp_rtt", "bare", 1e3,
     (0, 1.10)),
    ("sockperf", f"under-load: TCP p50 at {rate} msg/s offered, {size} B (us), async open loop",
     "tcp_load", "ipcbench", 1e3, (0.77, 1.30)),
    ("iperf3", f"TCP one stream, {int(stream) // 1024} KiB writes (GB/s)", "tcp_stream", "ipcbench",
     1e9, None),
]
print(f"\nMedians of {rounds} interleaved rounds; runner/client on CPU {a}, peer/server on CPU {b}, loopback.")
print("ratio = ipcbench / tool (round trip: below 1.10 means within 10% or faster;"
      " throughput: above 0.90 means within 10% or higher)")
print("bare loop = `ipcbench bare`, the reference adapter_ratio divides by: PASS when its round"
      " trip is within 1.10x of the tool's\n")
print("under load = sockperf under-load --tcp --mps RATE --reply-every 1 --full-rtt against"
      " ipcbench run --modes async --rate RATE: PASS when within 0.77x-1.3x\n")
print("| tool | figure | tool | ipcbench | ratio | gate |")
print("|---|---|---:|---:|---:|---|")
failed = []
for tool, label, key, ours, scale, gate in rows:
    t, i = med[(key, tool)], med[(key, ours)]
    mark = "-"
    if gate:
        lo, hi = gate
        mark = ("PASS" if lo <= i / t <= hi else "FAIL") + f" ({lo:g}-{hi:g}x)"
        if mark.startswith("FAIL"):
            failed.append(label)
    print(f"| {tool} | {label} | {t / scale:.2f} | {i / scale:.2f} | {i / t:.2f} | {mark} |")
if failed:
    print("\nFAIL: " + "; ".join(failed) + ": outside its range against the tool")
PY
