#!/usr/bin/env bash
# Cross-checks ipcbench's iceoryx mechanism against a minimal loop written
# directly on iceoryx's API (scripts/experiments/iceoryx/roundtrip.cpp, run
# by run.sh beside it in namespaces of its own): the 64 B request/response
# round trip, both sides blocked in a WaitSet as the mechanism is by
# default, then both busy-polling (ipcbench with --spin-budget), the client
# and the server on the two CPUs ipcbench's cross-cpu placement uses, RouDi
# given the very config the mechanism gives it (`ipcbench iceoryx-config`).
# Three rounds, ipcbench and the loop back to back (interleaved), then a
# table of medians and the ratios: PASS within 1.1x either way.
#
# Usage: scripts/crosscheck-iceoryx.sh         (root: the mechanism and the
#        loop each keep their RouDi in a private mount namespace)
#   IPCBENCH_CROSSCHECK_ROUNDS=3  IPCBENCH_CROSSCHECK_SIZE=64
#   IPCBENCH_CROSSCHECK_COUNT=50000  (round trips of the loop per round)
#   IPCBENCH_CROSSCHECK_SECONDS=1    (ipcbench's --min-time per round)
#   IPCBENCH_BUILD_DIR=build  IPCBENCH_BINARY=path  (an ipcbench built elsewhere: no build)
set -euo pipefail
cd "$(dirname "$0")/.."

rounds="${IPCBENCH_CROSSCHECK_ROUNDS:-3}"
size="${IPCBENCH_CROSSCHECK_SIZE:-64}"
count="${IPCBENCH_CROSSCHECK_COUNT:-50000}"
seconds="${IPCBENCH_CROSSCHECK_SECONDS:-1}"
python=/usr/bin/python3

if [ -n "${IPCBENCH_BINARY:-}" ]; then
  ipcbench="$IPCBENCH_BINARY"
else
  scripts/deps
  # The generator scripts/test uses (Ninja when present; a build folder keeps its own).
  command -v ninja >/dev/null && export CMAKE_GENERATOR="${CMAKE_GENERATOR:-Ninja}"
  build="${IPCBENCH_BUILD_DIR:-build}"
  cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release >/dev/null
  cmake --build "$build" -j"$(nproc)" --target ipcbench >/dev/null
  ipcbench="$build/bin/ipcbench"
fi
if ! why=$("$ipcbench" list --json | "$python" -c '
import json, sys
m = [e for e in json.load(sys.stdin) if e["name"] == "iceoryx"]
print(m[0].get("unavailable_reason", "") if m else "no iceoryx mechanism in this build")'); then
  echo "crosscheck-iceoryx: cannot list the mechanisms of $ipcbench" >&2
  exit 1
fi
if [ -n "$why" ]; then
  echo "crosscheck-iceoryx: iceoryx is unavailable here: $why" >&2
  exit 1
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$ipcbench" iceoryx-config >"$work/roudi.toml"
# The CPUs ipcbench's cross-cpu placement uses: the first two allowed.
read -r cpu_a cpu_b < <("$python" -c 'import os; c = sorted(os.sched_getaffinity(0)); print(c[0], c[1] if len(c) > 1 else c[0])')

# Two ways of waiting, each on both sides: asleep in a WaitSet (the
# mechanism's default), and busy-polling (the loop's poll; ipcbench with a
# spin budget far above a round trip).
declare -A ours loop
for round in $(seq 1 "$rounds"); do
  for wait in waitset poll; do
    spin=()
    [ "$wait" = poll ] && spin=(--spin-budget 10000000)
    out="$work/r$round-$wait"
    "$ipcbench" run --mechanisms iceoryx --modes sync --patterns latency --sizes "$size" \
      --min-time "$seconds" --no-calibration "${spin[@]}" --out "$out.json" >"$out.log" 2>&1 ||
      { echo "crosscheck-iceoryx: ipcbench failed:" >&2; tail -20 "$out.log" >&2; exit 1; }
    ours[$wait]+=" $("$python" -c '
import json, sys
rows = [b for b in json.load(open(sys.argv[1]))["benchmarks"] if b.get("run_type") == "iteration"]
print(rows[0]["p50_ns"])' "$out.json")"
    # ipcbench goes through iceoryx's loan API and writes only its header
    # per message (copies 0): the loop writes and echoes only its sequence.
    IPCBENCH_IOX_FILL=seq \
      IPCBENCH_IOX_RUNS=1 IPCBENCH_IOX_COUNT="$count" IPCBENCH_IOX_WARMUP=$((count / 10)) \
      IPCBENCH_IOX_WAIT="$wait" IPCBENCH_IOX_CLIENT_CPU="$cpu_a" IPCBENCH_IOX_SERVER_CPU="$cpu_b" \
      IPCBENCH_IOX_ROUDI_CONFIG="$work/roudi.toml" \
      scripts/experiments/iceoryx/run.sh "$size" >"$out.loop.log" 2>&1 ||
      { echo "crosscheck-iceoryx: the loop failed:" >&2; tail -20 "$out.loop.log" >&2; exit 1; }
    loop[$wait]+=" $(sed -n 's/.* p50=\([0-9]*\) .*/\1/p' "$out.loop.log" | head -1)"
    echo "round $round, $wait: ipcbench p50 ${ours[$wait]##* } ns, the loop's ${loop[$wait]##* } ns"
  done
done

"$python" - "$size" "${ours[waitset]}" "${loop[waitset]}" "${ours[poll]}" "${loop[poll]}" <<'PY'
import statistics, sys
size = sys.argv[1]
rows = [("WaitSet", sys.argv[2], sys.argv[3]), ("busy-poll", sys.argv[4], sys.argv[5])]
print("\n| figure | loop on iceoryx's API | ipcbench | ratio | within 1.1x |")
print("|---|---|---|---|---|")
failed = False
for wait, ours, loop in rows:
    a = statistics.median(float(x) for x in ours.split())
    b = statistics.median(float(x) for x in loop.split())
    ratio = a / b
    ok = 1 / 1.1 <= ratio <= 1.1
    failed |= not ok
    print(f"| iceoryx {size} B round trip p50, {wait}, us (median of {len(ours.split())}) "
          f"| {b / 1000:.2f} | {a / 1000:.2f} | {ratio:.2f} | {'PASS' if ok else 'FAIL'} |")
sys.exit(1 if failed else 0)
PY
