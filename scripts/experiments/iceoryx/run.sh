#!/usr/bin/env bash
# Builds roundtrip.cpp (beside this script) against the installed iceoryx
# 2.0.3 (Debian: iceoryx, libiceoryx-posh-dev) with plain g++ flags, then runs
# iox-roudi, the echoing server and the measuring client inside a private
# mount and PID namespace: /tmp and /dev/shm are fresh tmpfs there, so this
# RouDi (whose names are fixed in 2.0.3: /tmp/roudi, /tmp/roudi.lock,
# /tmp/iox-unique-roudi.lock, /dev/shm/iceoryx_mgmt, and the payload segment
# /dev/shm/<RouDi's group>) cannot meet any other RouDi or iceoryx
# application on the machine, and whatever is left when the namespace ends
# vanishes with it (the PID namespace also kills every process in it when the
# script inside exits). As non-root it adds a user namespace (--map-root-user).
# One RouDi serves all runs; readiness is its "RouDi is ready for clients"
# log line (and each application's registration, which retries until RouDi
# answers). Runs are interleaved: run 1 of every size, then run 2, ...
#
# Usage: scripts/experiments/iceoryx/run.sh [SIZE...]     (default: 64 65536)
#   IPCBENCH_IOX_RUNS=3  IPCBENCH_IOX_COUNT=200000  IPCBENCH_IOX_WARMUP=10000
#   IPCBENCH_IOX_WAIT=poll|waitset                 (the client's wait)
#   IPCBENCH_IOX_SERVER_WAIT=poll|waitset|listener (default: the client's)
#   IPCBENCH_IOX_FILL=full|seq  (full: whole payload written and echoed)
#   IPCBENCH_IOX_CLIENT_CPU=0  IPCBENCH_IOX_SERVER_CPU=1
#   IPCBENCH_IOX_ROUDI_CONFIG=FILE  (RouDi's TOML; default: one mempool per size)
set -euo pipefail

if [ "${1:-}" = "--inside" ]; then
  # ---- inside the namespaces; cwd is the (now hidden) work directory -------
  shift
  mount -t tmpfs -o size=256m,mode=1777 tmpfs /tmp
  mount -t tmpfs -o size=256m,mode=1777 tmpfs /dev/shm
  ms() { echo $(( $(date +%s%N) / 1000000 )); }

  t0=$(ms)
  : >roudi.log
  iox-roudi -c ./roudi.toml -l info >roudi.log 2>&1 &
  roudi=$!
  until grep -q "RouDi is ready for clients" roudi.log; do
    if ! kill -0 "$roudi" 2>/dev/null; then echo "iox-roudi exited:" >&2; cat roudi.log >&2; exit 1; fi
    if [ $(( $(ms) - t0 )) -gt 10000 ]; then echo "iox-roudi not ready within 10 s" >&2; exit 1; fi
    sleep 0.002
  done
  echo "roudi: ready after $(( $(ms) - t0 )) ms; /dev/shm holds $(ls -A /dev/shm | tr '\n' ' ')($(du -sk /dev/shm | cut -f1) KiB in use)"

  for run in $(seq 1 "$IPCBENCH_IOX_RUNS"); do
    for size in "$@"; do
      ./roundtrip server --cpu "$IPCBENCH_IOX_SERVER_CPU" --wait "$IPCBENCH_IOX_SERVER_WAIT" \
        --fill "$IPCBENCH_IOX_FILL" >"server.log" 2>&1 &
      server=$!
      if ! ./roundtrip client --cpu "$IPCBENCH_IOX_CLIENT_CPU" --wait "$IPCBENCH_IOX_WAIT" \
        --fill "$IPCBENCH_IOX_FILL" --size "$size" --count "$IPCBENCH_IOX_COUNT" \
        --warmup "$IPCBENCH_IOX_WARMUP" >client.log 2>&1; then
        echo "client failed:" >&2; cat client.log server.log >&2; exit 1
      fi
      if ! wait "$server"; then echo "server failed:" >&2; cat server.log >&2; exit 1; fi
      echo "run $run: $(grep '^iceoryx rr' client.log)"
    done
  done

  t0=$(ms)
  kill -TERM "$roudi"
  wait "$roudi" || true
  echo "roudi: stopped $(( $(ms) - t0 )) ms after SIGTERM; left in the namespace's /tmp: [$(ls -A /tmp | tr '\n' ' ')] /dev/shm: [$(ls -A /dev/shm | tr '\n' ' ')]"
  exit 0
fi

# ---- outside: build, then enter the namespaces -------------------------------
here="$(cd "$(dirname "$0")" && pwd)"
export IPCBENCH_IOX_RUNS="${IPCBENCH_IOX_RUNS:-3}"
export IPCBENCH_IOX_COUNT="${IPCBENCH_IOX_COUNT:-200000}"
export IPCBENCH_IOX_WARMUP="${IPCBENCH_IOX_WARMUP:-10000}"
export IPCBENCH_IOX_WAIT="${IPCBENCH_IOX_WAIT:-poll}"
export IPCBENCH_IOX_SERVER_WAIT="${IPCBENCH_IOX_SERVER_WAIT:-$IPCBENCH_IOX_WAIT}"
export IPCBENCH_IOX_FILL="${IPCBENCH_IOX_FILL:-full}"
export IPCBENCH_IOX_CLIENT_CPU="${IPCBENCH_IOX_CLIENT_CPU:-0}"
export IPCBENCH_IOX_SERVER_CPU="${IPCBENCH_IOX_SERVER_CPU:-1}"
sizes=("$@")
[ ${#sizes[@]} -eq 0 ] && sizes=(64 65536)

command -v iox-roudi >/dev/null || { echo "run.sh: iox-roudi missing (apt-get install iceoryx)" >&2; exit 1; }
include=$(ls -d /usr/include/iceoryx/v* 2>/dev/null | sort -V | tail -n 1)
[ -f "$include/iceoryx_posh/popo/untyped_client.hpp" ] ||
  { echo "run.sh: iceoryx headers missing (apt-get install libiceoryx-posh-dev)" >&2; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
g++ -O2 -std=c++17 -I"$include" -o "$work/roundtrip" "$here/roundtrip.cpp" \
  -liceoryx_posh -liceoryx_hoofs -liceoryx_platform -lpthread -lrt -latomic

# One mempool per size: the chunk holds the request/response header (an
# RpcBaseHeader, as iceoryx's "user header") before the payload; RouDi adds
# the ChunkHeader itself. Only a few chunks are ever in flight. The layout
# matters: 64 B measured ~15% slower with a second mempool configured than
# with the 64 B pool alone, so a cross-check must give RouDi the same config
# as the run it is compared with (IPCBENCH_IOX_ROUDI_CONFIG=FILE).
if [ -n "${IPCBENCH_IOX_ROUDI_CONFIG:-}" ]; then
  cp "$IPCBENCH_IOX_ROUDI_CONFIG" "$work/roudi.toml"
else
  {
    printf '[general]\nversion = 1\n\n[[segment]]\n'
    for chunk in $(for s in "${sizes[@]}"; do echo $(( (s + 256 + 7) / 8 * 8 )); done | sort -n -u); do
      printf '\n[[segment.mempool]]\nsize = %d\ncount = 64\n' "$chunk"
    done
  } >"$work/roudi.toml"
fi

# The names a RouDi and these two applications (each runtime has a socket
# /tmp/<runtime name> and a lock file) create; none may be left in
# the real /tmp or /dev/shm afterwards (unless they were there before: then
# another RouDi owns them and this script never touched them).
names=(/tmp/roudi /tmp/roudi.lock /tmp/iox-unique-roudi.lock /tmp/ipcbench-roundtrip-server
  /tmp/ipcbench-roundtrip-server.lock /tmp/ipcbench-roundtrip-client /tmp/ipcbench-roundtrip-client.lock
  /dev/shm/iceoryx_mgmt "/dev/shm/$(id -gn)")
before=()
for n in "${names[@]}"; do [ -e "$n" ] && before+=("$n"); done
[ ${#before[@]} -gt 0 ] && echo "run.sh: already present outside (someone else's iceoryx?): ${before[*]}"

ns=(unshare --mount --propagation private --pid --fork --mount-proc --kill-child)
[ "$(id -u)" -ne 0 ] && ns=(unshare --user --map-root-user --mount --propagation private --pid --fork --mount-proc --kill-child)
echo "iceoryx $(basename "$include") request/response round trip: sizes ${sizes[*]}, ${IPCBENCH_IOX_RUNS} runs of" \
  "${IPCBENCH_IOX_COUNT} (after ${IPCBENCH_IOX_WARMUP} warm-up), client CPU ${IPCBENCH_IOX_CLIENT_CPU}" \
  "wait=${IPCBENCH_IOX_WAIT}, server CPU ${IPCBENCH_IOX_SERVER_CPU} wait=${IPCBENCH_IOX_SERVER_WAIT}, fill=${IPCBENCH_IOX_FILL}"
(cd "$work" && "${ns[@]}" bash "$here/run.sh" --inside "${sizes[@]}")

left=()
for n in "${names[@]}"; do
  if [ -e "$n" ] && [[ ! " ${before[*]} " == *" $n "* ]]; then left+=("$n"); fi
done
if [ ${#left[@]} -gt 0 ]; then echo "run.sh: FAIL: left outside the namespace: ${left[*]}" >&2; exit 1; fi
echo "nothing left in the real /tmp or /dev/shm"
