#!/usr/bin/python3
"""Remote-shaped result files, derived from local ones, until the suite's
'ipcbench run --remote HOST:PORT' writes real ones.

remote_shaped(doc) rewrites a local result as a remote run writes it
(docs/result.schema.json): ipcbench.remote (address, protocol_version, the
serve host, serve's CPUs); on every entry across_hosts true and remote
{address, peer_cpu} (cpus[1] becomes the peer's CPU on the remote host);
no floors (floor, floor_value, floor_ratio null with the across-hosts
floor_note); async latency entries without one-way figures, with the
across-hosts oneway_note. The measured figures are scaled (latency up,
rates down) so a report over the pair shows a recognisable ratio.

As a script: remote_fixture.py LOCAL.json REMOTE.json [--latency-factor F]
[--throughput-factor F] writes the derived file.
"""

import argparse
import copy
import json
import sys
from pathlib import Path

ADDRESS = "198.18.0.1:7070"
PROTOCOL_VERSION = 1
REMOTE_HOST = {
    "hostname": "serve-b",
    "cpu_model": "AMD EPYC 7763 64-Core Processor",
    "cpus_online": 4,
    "cpus_allowed": [0, 1, 2, 3],
    "kernel": "Linux 6.1.0-28-amd64",
    "hypervisor": "KVM",
    "governor": None,
}
FLOOR_NOTE = "across hosts: the calibration's floors describe this host only"
ONEWAY_NOTE = ("not reported across hosts: one-way latency needs a clock both hosts share; "
               "only round trips are reported")
ONEWAY_FIELDS = ("oneway_samples", "oneway_min_ns", "oneway_p50_ns", "oneway_p90_ns",
                 "oneway_p99_ns", "oneway_p999_ns", "oneway_max_ns", "oneway_mean_ns",
                 "oneway_histogram")
LATENCY_FIELDS = ("min_ns", "p50_ns", "p90_ns", "p99_ns", "p999_ns", "p9999_ns", "max_ns",
                  "mean_ns", "stddev_ns")
RATE_FIELDS = ("bytes_per_second", "items_per_second", "rate_achieved")
# A network hop between two VMs: round trips ~2.5x the loopback's,
# throughput ~1/1.6 of it.
LATENCY_FACTOR = 2.5
THROUGHPUT_FACTOR = 1.6


def _scale(entry, factor):
    """Latency figures (and the time per message) times factor, rates
    divided by it; a cv aggregate (a ratio) is left as it is."""
    if entry.get("skipped") or entry.get("error_occurred"):
        return
    if entry.get("run_type") == "aggregate" and entry.get("aggregate_name") == "cv":
        return
    for k in LATENCY_FIELDS:
        if isinstance(entry.get(k), (int, float)):
            entry[k] = round(entry[k] * factor) if isinstance(entry[k], int) else entry[k] * factor
    if isinstance(entry.get("real_time"), (int, float)):
        entry["real_time"] = entry["real_time"] * factor
    for k in RATE_FIELDS:
        if isinstance(entry.get(k), (int, float)):
            entry[k] = entry[k] / factor
    for point in entry.get("histogram") or []:
        point["value_ns"] = round(point["value_ns"] * factor)


def remote_shaped(doc, address=ADDRESS, host=None, serve_cpus=(2,), peer_cpu=2,
                  latency_factor=LATENCY_FACTOR, throughput_factor=THROUGHPUT_FACTOR):
    """A copy of a local result document as a remote run writes it."""
    doc = copy.deepcopy(doc)
    meta = doc["ipcbench"]
    meta["remote"] = {"address": address, "protocol_version": PROTOCOL_VERSION,
                      "host": copy.deepcopy(host or REMOTE_HOST), "cpus": list(serve_cpus)}
    cmd = meta["configuration"].get("command_line")
    if isinstance(cmd, list) and "--remote" not in cmd:
        meta["configuration"]["command_line"] = cmd[:2] + ["--remote", address] + cmd[2:]
    for e in doc["benchmarks"]:
        e["across_hosts"] = True
        measured = not e.get("skipped") and not e.get("error_occurred")
        cpus = e.get("cpus") or []
        known = peer_cpu if (len(cpus) == 2 and peer_cpu >= 0) else -1
        if len(cpus) == 2 and known >= 0:
            e["cpus"] = [cpus[0], known]
        e["remote"] = {"address": address, "peer_cpu": known}
        for k in ("floor_source", "measurement_error"):
            e.pop(k, None)
        if measured:
            e.update(floor=None, floor_value=None, floor_ratio=None, floor_note=FLOOR_NOTE)
        else:
            for k in ("floor", "floor_value", "floor_ratio", "floor_note"):
                e.pop(k, None)
        for k in ONEWAY_FIELDS:
            e.pop(k, None)
        if e.get("mode") == "async" and e.get("pattern") == "latency" and measured:
            e["oneway_note"] = ONEWAY_NOTE
        _scale(e, latency_factor if e.get("pattern") == "latency" else throughput_factor)
    if "flagged" in meta:
        meta["flagged"] = []
    return doc


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("local", type=Path)
    parser.add_argument("remote", type=Path)
    parser.add_argument("--address", default=ADDRESS)
    parser.add_argument("--latency-factor", type=float, default=LATENCY_FACTOR)
    parser.add_argument("--throughput-factor", type=float, default=THROUGHPUT_FACTOR)
    args = parser.parse_args(argv)
    doc = json.loads(args.local.read_text(encoding="utf-8"))
    out = remote_shaped(doc, args.address, latency_factor=args.latency_factor,
                        throughput_factor=args.throughput_factor)
    args.remote.write_text(json.dumps(out, indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
