#!/usr/bin/python3
"""ipcbench soak mode: run the suite over and over for N minutes and check that
RSS, open descriptors, threads and IPC objects stay flat.

Usage: scripts/soak [--minutes N] [--binary PATH] [--out FILE] [-- ipcbench run args...]

Not part of the default CI (ctest runs only a 6-second self-test of this
script on one mechanism). Debian's /usr/bin/python3, standard library only.

What is measured, from outside, every --interval seconds (1):
  the runner process: VmRSS, VmHWM (its peak RSS), /proc/PID/fd count,
  thread count, memory mappings (/proc/PID/maps lines), and its "ipcbench
  peer" children; every --objects-interval seconds (2) and after every run,
  the machine's ipcbench IPC objects as scripts/leftovers lists them (run
  directories, /dev/shm/ipcbench*, POSIX queues, this user's SysV objects,
  peer processes).

Other agents and tests may run ipcbench on the same machine meanwhile, so
every object is attributed: names carry the owner's pid
(/tmp/ipcbench.<pid>.*, /dev/shm/ipcbench.<pid>.*), peers carry
`--parent <pid>`, SysV queues are matched on their last sender/receiver pid
(/proc/sysvipc). "Ours" = owned by a runner this script started (or by a
peer of one); only ours are judged; the others are counted as "foreign" for
the record. A SysV object with no pid to go by (e.g. a semaphore set, or a
queue nobody has used yet) is "unattributed": listed, not judged.

The time is split in two levels (--share-a, 0.5, is level (a)'s part):

(b) Across runs (first): `ipcbench run --min-time T --out ...` (the default
    suite unless the args after -- narrow it) again and again until its
    share of the time is up (a run is not started when less than half a
    typical run's time is left; at least one run). After each run: its
    exit status must be 0 (otherwise the failed or flagged cases are named),
    and none of our IPC objects or peer processes may remain (the baseline
    before the soak has none of ours, by construction). Per run, the peak
    RSS (VmHWM) and the peak sampled fd, thread and mapping counts (only
    from runs with at least 3 samples: one sample is no peak) of the
    first third of the runs are compared with the last third (medians):
    flat = RSS within 10% + 4 MiB, fds within +4, threads +2, mappings +16.
    (Fewer than 3 runs: reported, not judged.)

(a) Within one long-lived runner (second): ONE `ipcbench run` over the same
    suite with `--repetitions R -- --benchmark_enable_random_interleaving=true`.
    Google Benchmark then runs the suite R times over in a random order of
    (case, repetition), and since the runner keeps only the current case's
    PeerSession, nearly every trial starts a new session: one process
    creates and destroys ~cases x R sessions (listen, fork+exec of a peer,
    accept, teardown). R is chosen from the level (b) runs' duration to fill
    the remaining time (at least 2).

    By design the runner keeps every trial for the report: each latency
    trial stores a copy of its histogram (31 KiB = 3968 x 8-byte counts),
    every trial a small record, every reported row its counters and JSON.
    So RSS grows with the number of trials, not flat. What we chose: count
    the trials after the run from its result file (R repetitions per
    measured case, one trial each: every case times itself, so Google
    Benchmark runs no estimating trials), and compare the RSS growth during the cases (first to last
    sample with a peer; the final JSON assembly is outside) with
      allowed = 1.25 x (latency trials x 32 KiB + trials x 1 KiB
                        + reported rows x 4 KiB) + 8 MiB
    (32 KiB: the 31 KiB histogram in its own 4 KiB-rounded mapping, below).
    RSS here is RssAnon (the heap, where trials and leaks accumulate):
    VmRSS also counts the current case's shared-memory ring (RssShmem, a
    metric of its own, like the mappings).

    Heap fragmentation: interleaving sessions (transient buffers: 64 KiB
    framing buffers, ZeroMQ contexts) with long-lived histogram copies
    leaves freed holes the heap cannot give back. Measured on 40 cases x 10
    repetitions (the same 557 trials): 40 sessions grew RssAnon by 10.4 MiB,
    ~400 interleaved sessions by 16.4 MiB, i.e. ~17 KiB per session that a
    per-session leak would look like; with glibc's mmap_threshold at 4 KiB
    both grew 10.3 MiB (every freed block of 4 KiB or more goes straight
    back to the kernel). So level (a)'s runner runs with
    GLIBC_TUNABLES=glibc.malloc.mmap_threshold=4096 (--native-malloc: not),
    which makes RssAnon follow the live data: a real leak still shows (leaked
    blocks stay mapped), fragmentation does not. Level (b) uses the plain
    allocator (it compares runs with each other, fragmentation alike).
    The summary also gives the growth per latency trial against the 31 KiB
    histogram. Descriptors, threads, mappings, peers and our IPC objects
    have no such growth by design: in the window with peers, the samples of
    the first third are compared with the last third (min and median, which
    a leak lifts, not the max, which depends on which mechanism a sample
    happened to catch): fds +4, threads +2, RssShmem 25% + 4 MiB, peers +0
    (and at most one peer at any sample), our objects +2; mappings +16 only
    with --native-malloc (under the tunable below every histogram copy is a
    mapping of its own, so they grow by design; a leaked shared-memory
    mapping still shows in RssShmem, and mappings are judged across runs). After the run, the same
    leftover check as in (b). Fewer than 6 samples in the window: reported,
    not judged.

Output: one table row per --window seconds (10) of samples and one line per
run on stdout; a JSON summary with --out (start/end/peak RSS, fds, threads,
objects, runs done, cases run, per-run figures, verdict, reasons).
Exit status: 0 flat; 1 not flat (one line per metric that is not, on
stderr and in the JSON); 2 bad usage; 130 interrupted (Ctrl-C or SIGTERM:
the current run is stopped with SIGINT, which makes it clean up, and the
leftover check still runs).

Do not pass --repetitions, --min-time or --out after --: the soak sets them.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import math
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
HISTOGRAM_BYTES = 32 * 1024         # make_latency_histogram(): 3968 x 8 B = 31 KiB, in pages
TRIAL_RECORD_BYTES = 1024           # a Trial's TrialResult, map node, one-way spectrum
REPORTED_ROW_BYTES = 4096           # Google Benchmark's Run (counters map) + our row + JSON text
RSS_A_FACTOR = 1.25
RSS_A_SLACK_KIB = 8 * 1024
# Level (a)'s runner: every heap block of 4 KiB or more gets its own mapping
# and goes back to the kernel when freed (see the header).
MALLOC_TUNABLE = "glibc.malloc.mmap_threshold=4096"
MIB = 1024                          # KiB per MiB

TOLERANCES = {
    # metric: (absolute slack, relative slack)
    "rss_kib": (4 * 1024, 0.10),
    "shmem_kib": (4 * 1024, 0.25),
    "fds": (4, 0.0),
    "threads": (2, 0.0),
    "maps": (16, 0.0),
    "peers": (0, 0.0),
    "objects": (2, 0.0),
}
MIN_WINDOW_SAMPLES = 6
# Samples a run needs before its largest sampled fds/threads/maps count as its peak.
MIN_PEAK_SAMPLES = 3
MIN_RUNS = 3


class Stop(Exception):
    """Ctrl-C or SIGTERM."""


# ---------------------------------------------------------------- sampling

def read_proc(pid: int) -> dict | None:
    """VmRSS/VmHWM (KiB), fds, threads, mappings of one process; None if gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        fds = len(os.listdir(f"/proc/{pid}/fd"))
        with open(f"/proc/{pid}/maps", "rb") as f:
            maps = sum(1 for _ in f)
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    fields = {}
    for line in status.splitlines():
        key, _, value = line.partition(":")
        fields[key] = value.split()
    if fields.get("State", ["Z"])[0] == "Z":
        return None
    return {
        "rss_kib": int(fields.get("VmRSS", ["0"])[0]),
        "hwm_kib": int(fields.get("VmHWM", ["0"])[0]),
        "anon_kib": int(fields.get("RssAnon", ["0"])[0]),
        "shmem_kib": int(fields.get("RssShmem", ["0"])[0]),
        "threads": int(fields.get("Threads", ["0"])[0]),
        "fds": fds,
        "maps": maps,
    }


def peer_children(pid: int) -> list[int]:
    """The runner's children that are `ipcbench peer` processes (not the
    calibration's forked helpers, which are copies of the runner)."""
    peers = []
    try:
        kids = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return peers
    for kid in kids:
        try:
            argv = Path(f"/proc/{kid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if len(argv) > 1 and argv[1] == b"peer":
            peers.append(int(kid))
    return peers


def read_sysv() -> dict[tuple[str, str], list[int]]:
    """(kind, id) -> pids that used the object (msg: last send/receive, shm: creator/last)."""
    table: dict[tuple[str, str], list[int]] = {}
    cols = {"msg": ("msqid", ("lspid", "lrpid")), "shm": ("shmid", ("cpid", "lpid")), "sem": ("semid", ())}
    for kind, (idcol, pidcols) in cols.items():
        try:
            lines = Path(f"/proc/sysvipc/{kind}").read_text().splitlines()
        except OSError:
            continue
        if not lines:
            continue
        head = lines[0].split()
        for line in lines[1:]:
            v = line.split()
            if len(v) != len(head):
                continue
            row = dict(zip(head, v))
            table[(kind, row[idcol])] = [int(row[c]) for c in pidcols if int(row[c]) > 0]
    return table


NAME_PID = re.compile(r"ipcbench\.(\d+)\.")
PARENT = re.compile(r"--parent (\d+)")
SYSV = re.compile(r"^sysv-(msg|shm|sem) id=(\d+)")
PROC = re.compile(r"^process (\d+) ")


def classify(lines: list[str], own: set[int], sysv: dict) -> dict[str, list[str]]:
    """Splits scripts/leftovers lines into ours, foreign and unattributed.
    `own` holds the pids of our runners and of their peers seen so far."""
    out: dict[str, list[str]] = {"own": [], "foreign": [], "unattributed": []}
    for line in lines:
        line = line.strip()
        if not line:
            continue
        m = SYSV.match(line)
        if m:
            pids = sysv.get((m.group(1), m.group(2)))
            if not pids:
                out["unattributed"].append(line)
            else:
                out["own" if any(p in own for p in pids) else "foreign"].append(line)
            continue
        m = PROC.match(line)
        if m:
            parent = PARENT.search(line)
            mine = int(m.group(1)) in own or (parent is not None and int(parent.group(1)) in own)
            out["own" if mine else "foreign"].append(line)
            continue
        m = NAME_PID.search(line)
        if m:
            out["own" if int(m.group(1)) in own else "foreign"].append(line)
        else:
            out["unattributed"].append(line)
    return out


def leftovers(own: set[int]) -> dict[str, list[str]]:
    try:
        r = subprocess.run([str(REPO / "scripts" / "leftovers")], capture_output=True, text=True, timeout=30)
        lines = r.stdout.splitlines()
    except subprocess.TimeoutExpired:
        lines = []
    return classify(lines, own, read_sysv())


# ---------------------------------------------------------------- verdicts

def thirds(values: list) -> tuple[list, list]:
    n = len(values)
    k = max(1, n // 3)
    return values[:k], values[n - k:]


def judge_samples(metric: str, values: list[float], label: str) -> tuple[str | None, dict]:
    """Min and median of the last third of a window against the first third.
    Returns (reason or None, figures)."""
    if len(values) < MIN_WINDOW_SAMPLES:
        return None, {"judged": False, "samples": len(values)}
    first, last = thirds(values)
    absolute, relative = TOLERANCES[metric]
    fig = {
        "judged": True, "samples": len(values),
        "first_min": min(first), "first_median": statistics.median(first),
        "last_min": min(last), "last_median": statistics.median(last),
        "start": values[0], "end": values[-1], "peak": max(values),
        "tolerance": absolute if not relative else f"{relative:.0%} + {absolute}",
    }
    worse = []
    for stat in ("min", "median"):
        a, b = fig[f"first_{stat}"], fig[f"last_{stat}"]
        if b > a * (1 + relative) + absolute:
            worse.append(f"{stat} {fmt(metric, a)} -> {fmt(metric, b)}")
    if worse:
        return f"{label}: {metric} grows within one runner ({', '.join(worse)}; tolerance {fig['tolerance']})", fig
    return None, fig


def judge_runs(metric: str, values: list[float]) -> tuple[str | None, dict]:
    """Per-run peaks: median of the last third of the runs against the first third."""
    if len(values) < MIN_RUNS:
        return None, {"judged": False, "runs": len(values), "values": values}
    first, last = thirds(values)
    absolute, relative = TOLERANCES[metric]
    a, b = statistics.median(first), statistics.median(last)
    fig = {"judged": True, "runs": len(values), "first_third_median": a, "last_third_median": b,
           "values": values}
    if b > a * (1 + relative) + absolute:
        tol = f"{relative:.0%} + {fmt(metric, absolute)}" if relative else f"+{absolute}"
        return (f"runs: peak {metric} per run trends upward (first third median {fmt(metric, a)}, "
                f"last third {fmt(metric, b)}; tolerance {tol})"), fig
    return None, fig


def expected_rss_growth_kib(info: dict) -> float:
    b = (info["latency_trials"] * HISTOGRAM_BYTES + info["trials"] * TRIAL_RECORD_BYTES
         + info["reported_rows"] * REPORTED_ROW_BYTES)
    return b / 1024


def judge_level_a(samples: list[dict], info: dict | None, judge_maps: bool = True) -> tuple[list[str], dict]:
    """Level (a): samples of one runner (each a dict with rss_kib, fds,
    threads, maps, peers and, where taken, objects) and what its result file
    says (trial counts) or None when the run did not complete."""
    reasons: list[str] = []
    report: dict = {}
    window = [s for s in samples if s.get("peers", 0) > 0]
    if window:
        i0, i1 = samples.index(window[0]), len(samples) - 1 - samples[::-1].index(window[-1])
        window = samples[i0:i1 + 1]
    for metric in ("fds", "threads", "maps", "peers", "shmem_kib"):
        r, fig = judge_samples(metric, [s[metric] for s in window], "one runner")
        if metric == "maps" and not judge_maps:
            fig["judged"], r = False, None
            fig["note"] = "mmap_threshold=4096: histogram copies are mappings of their own (judged per run in (b))"
        report[metric] = fig
        if r:
            reasons.append(r)
    objs = [s["objects"] for s in window if s.get("objects") is not None]
    r, fig = judge_samples("objects", objs, "one runner")
    report["objects"] = fig
    if r:
        reasons.append(r)
    most_peers = max((s["peers"] for s in window), default=0)
    report["peers"]["max"] = most_peers
    if most_peers > 1:
        reasons.append(f"one runner: {most_peers} peers alive at once (a session's peer outlived it)")
    rss = {"judged": False}
    if len(window) >= MIN_WINDOW_SAMPLES:
        # The heap (RssAnon) is where trials and leaks accumulate; VmRSS also
        # counts the current case's shared-memory ring (RssShmem, judged apart).
        start, end = window[0]["anon_kib"], window[-1]["anon_kib"]
        rss = {"metric": "RssAnon", "start_kib": start, "end_kib": end,
               "peak_kib": max(s["anon_kib"] for s in samples), "growth_kib": end - start,
               "vmrss_start_kib": window[0]["rss_kib"], "vmrss_end_kib": window[-1]["rss_kib"],
               "vmrss_peak_kib": max(s["rss_kib"] for s in samples), "judged": False}
        if info is not None:
            expected = expected_rss_growth_kib(info)
            allowed = RSS_A_FACTOR * expected + RSS_A_SLACK_KIB
            per_trial = (end - start) / info["latency_trials"] if info["latency_trials"] else None
            rss.update({"judged": True, "expected_growth_kib": round(expected), "allowed_growth_kib": round(allowed),
                        "latency_trials": info["latency_trials"], "trials": info["trials"],
                        "growth_per_latency_trial_kib": round(per_trial, 1) if per_trial is not None else None,
                        "histogram_kib": 31.0, "allowance_per_histogram_kib": HISTOGRAM_BYTES / 1024})
            if end - start > allowed:
                reasons.append(
                    f"one runner: RSS (anonymous) grew {fmt('rss_kib', end - start)} during the cases, more than the "
                    f"stored trials explain ({info['latency_trials']} latency trials x 32 KiB + records = "
                    f"{fmt('rss_kib', expected)}; allowed {fmt('rss_kib', allowed)})")
        else:
            rss["note"] = "the run did not complete: trials unknown, RSS growth not judged"
    report["rss"] = rss
    return reasons, report


def judge_level_b(runs: list[dict]) -> tuple[list[str], dict]:
    """Level (b): each run is a dict with exit, problem (why the exit is not 0),
    own_after (our objects left after it), peak rss_kib/fds/threads."""
    reasons: list[str] = []
    report: dict = {}
    for run in runs:
        if run["exit"] != 0 and not run.get("interrupted"):
            reasons.append(f"run {run['index']}: exit status {run['exit']}: {run.get('problem') or 'see its log'}")
        if run["own_after"]:
            shown = "; ".join(run["own_after"][:3]) + (" ..." if len(run["own_after"]) > 3 else "")
            reasons.append(f"run {run['index']}: {len(run['own_after'])} IPC objects/processes left behind: {shown}")
    for metric in ("rss_kib", "fds", "threads", "maps"):
        # VmHWM is the kernel's own peak; the others are the largest of the
        # run's samples, which is no peak when a run is shorter than a few
        # samples (one sample catches a case's extra descriptors or not).
        peaks = [run["peak"][metric] for run in runs if run.get("peak") and
                 (metric == "rss_kib" or len(run.get("samples", [])) >= MIN_PEAK_SAMPLES)]
        r, fig = judge_runs(metric, peaks)
        report[metric] = fig
        if r:
            reasons.append(r)
    return reasons, report


def fmt(metric: str, v: float) -> str:
    if metric.endswith("_kib"):
        return f"{v / MIB:.1f} MiB"
    return f"{v:g}"


# ---------------------------------------------------------------- results

def read_result(path: Path) -> dict | None:
    try:
        d = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    cases: dict[str, dict] = {}
    reported_rows = 0
    for b in d.get("benchmarks", []):
        name = b.get("run_name", b.get("name", ""))
        c = cases.setdefault(name, {"pattern": b.get("pattern"), "reps": 0,
                                    "skipped": False, "error": False})
        reported_rows += 1
        if b.get("skipped"):
            c["skipped"] = True
        elif b.get("error_occurred"):
            c["error"] = True
        elif b.get("run_type", "iteration") == "iteration":
            c["reps"] += 1
    trials = latency_trials = 0
    for c in cases.values():
        if c["reps"] == 0:
            continue
        n = c["reps"]  # one trial per repetition: every case times itself
        trials += n
        if c["pattern"] == "latency":
            latency_trials += n
    meta = d.get("ipcbench", {})
    return {
        "complete": bool(meta.get("complete", False)),
        "cases": len(cases),
        "measured": sum(1 for c in cases.values() if c["reps"] > 0),
        "skipped": sum(1 for c in cases.values() if c["skipped"]),
        "failed": [f"{f.get('name')}: {f.get('error')}" for f in meta.get("failed", [])],
        "flagged": [f"{f.get('name')}: {f.get('reason')}" for f in meta.get("flagged", [])],
        "repetitions": max((c["reps"] for c in cases.values()), default=0),
        "trials": trials,
        "latency_trials": latency_trials,
        "reported_rows": reported_rows,
    }


# ---------------------------------------------------------------- the soak

@dataclass
class Soak:
    binary: Path
    minutes: float
    extra: list[str]
    interval: float = 1.0
    objects_interval: float = 2.0
    window: float = 10.0
    min_time: float = 0.02
    share_a: float = 0.5
    malloc_tunable: bool = True
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="ipcbench-soak.")))
    own: set = field(default_factory=set)
    child: subprocess.Popen | None = None
    stop_requested: bool = False
    samples: list = field(default_factory=list)
    runs: list = field(default_factory=list)
    level_a: dict | None = None
    _window_rows: list = field(default_factory=list)
    _window_start: float = 0.0

    def __post_init__(self):
        self.t0 = time.monotonic()
        self.deadline = self.t0 + self.minutes * 60

    def elapsed(self) -> float:
        return time.monotonic() - self.t0

    # -- one ipcbench run, sampled until it exits
    def run_child(self, tag: str, args: list[str], hard_stop: float | None = None, env: dict | None = None) -> dict:
        out = self.workdir / f"{tag}.json"
        log = self.workdir / f"{tag}.log"
        cmd = [str(self.binary), "run", "--min-time", str(self.min_time), "--out", str(out), *args]
        with open(log, "wb") as logf:
            self.child = subprocess.Popen(cmd, stdout=logf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                          env={**os.environ, **(env or {})}, start_new_session=True, preexec_fn=_die_with_parent)
        pid = self.child.pid
        self.own.add(pid)
        started = time.monotonic()
        samples: list[dict] = []
        next_obj = started
        stopped_at_deadline = False
        hwm = 0
        self._sleep(min(self.interval, 0.25))  # let it exec first
        while True:
            if self.child.poll() is not None:
                break
            now = time.monotonic()
            if self.stop_requested:
                self._stop_child()
                break
            if hard_stop is not None and now > hard_stop and not stopped_at_deadline:
                stopped_at_deadline = True
                self.child.send_signal(signal.SIGINT)
            p = read_proc(pid)
            if p is not None:
                peers = peer_children(pid)
                self.own.update(peers)
                s = {"t": round(now - self.t0, 2), "level": tag.split("-")[0], "run": tag, **p, "peers": len(peers),
                     "objects": None, "foreign": None}
                if now >= next_obj:
                    objs = leftovers(self.own)
                    s["objects"], s["foreign"] = len(objs["own"]), len(objs["foreign"])
                    next_obj = now + self.objects_interval
                hwm = max(hwm, p["hwm_kib"])
                samples.append(s)
                self.samples.append(s)
                self._window_add(s)
            self._sleep(self.interval)
        rc = self.child.wait()
        self.child = None
        after = leftovers(self.own)
        info = read_result(out)
        problem = None
        if rc != 0:
            if info and (info["failed"] or info["flagged"]):
                problem = "; ".join([f"failed {f}" for f in info["failed"]] + [f"flagged {f}" for f in info["flagged"]])
            elif rc >= 128:
                problem = f"stopped by signal {rc - 128}" + (" at the soak's deadline" if stopped_at_deadline else "")
            else:
                tail = log.read_text(errors="replace").strip().splitlines()[-1:] or ["no output"]
                problem = tail[0][:300]
        peak = None
        if samples:
            peak = {"rss_kib": hwm, "fds": max(s["fds"] for s in samples), "threads": max(s["threads"] for s in samples),
                    "maps": max(s["maps"] for s in samples)}
        if self.stop_requested:
            problem = "stopped: the soak was interrupted"
        return {"tag": tag, "pid": pid, "exit": rc, "problem": problem, "interrupted": self.stop_requested, "seconds": round(time.monotonic() - started, 1),
                "info": info, "own_after": after["own"], "foreign_after": len(after["foreign"]),
                "unattributed_after": after["unattributed"], "peak": peak, "samples": samples,
                "stopped_at_deadline": stopped_at_deadline, "log": str(log)}

    def _sleep(self, seconds: float):
        end = time.monotonic() + seconds
        while not self.stop_requested and self.child is not None and self.child.poll() is None:
            left = end - time.monotonic()
            if left <= 0:
                return
            time.sleep(min(left, 0.1))

    def _stop_child(self):
        if self.child is None or self.child.poll() is not None:
            return
        self.child.send_signal(signal.SIGINT)   # ipcbench cleans up and exits 130
        try:
            self.child.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.child.kill()
            self.child.wait()

    # -- the table
    def _window_add(self, s: dict):
        if not self._window_rows:
            self._window_start = s["t"]
        self._window_rows.append(s)
        if s["t"] - self._window_start >= self.window:
            self.flush_window()

    def flush_window(self):
        rows = self._window_rows
        if not rows:
            return
        self._window_rows = []
        if not getattr(self, "_header", False):
            self._header = True
            print(f"{'t (s)':>7} {'run':<8} {'n':>3} {'RSS MiB min-max':>16} {'anon MiB':>11} {'fds':>7} {'thr':>5} "
                  f"{'maps':>9} {'peers':>5} {'ours':>4} {'foreign':>7}", flush=True)

        def rng(key, scale=1.0, f="{:.0f}"):
            vals = [r[key] / scale for r in rows]
            lo, hi = min(vals), max(vals)
            return f.format(lo) if lo == hi else f"{f.format(lo)}-{f.format(hi)}"
        objs = [r["objects"] for r in rows if r["objects"] is not None]
        foreign = [r["foreign"] for r in rows if r["foreign"] is not None]
        print(f"{rows[0]['t']:>7.0f} {rows[0]['run']:<8} {len(rows):>3} {rng('rss_kib', MIB, '{:.1f}'):>16} "
              f"{rng('anon_kib', MIB, '{:.1f}'):>11} "
              f"{rng('fds'):>7} {rng('threads'):>5} {rng('maps'):>9} {max(r['peers'] for r in rows):>5} "
              f"{(max(objs) if objs else '-'):>4} {(max(foreign) if foreign else '-'):>7}", flush=True)

    # -- the two levels
    def run(self) -> dict:
        baseline = leftovers(self.own)
        b_end = self.t0 + (1 - self.share_a) * self.minutes * 60
        durations: list[float] = []
        while not self.stop_requested:
            left = b_end - time.monotonic()
            if self.runs and (left <= 0 or (durations and left < 0.5 * statistics.median(durations))):
                break
            r = self.run_child(f"b-{len(self.runs) + 1}", self.extra)
            self.flush_window()
            r["index"] = len(self.runs) + 1
            self.runs.append(r)
            durations.append(r["seconds"])
            i = r["info"] or {}
            pk = r["peak"] or {}
            print(f"run {r['index']}: exit {r['exit']}, {r['seconds']:.1f} s, {i.get('cases', '?')} cases "
                  f"({i.get('measured', '?')} measured, {i.get('skipped', '?')} skipped), peak RSS "
                  f"{fmt('rss_kib', pk.get('rss_kib', 0))}, peak fds {pk.get('fds', '?')}, threads "
                  f"{pk.get('threads', '?')}; ours left after it: {len(r['own_after'])}"
                  + (f" ({r['problem']})" if r["problem"] else ""), flush=True)
        if not self.stop_requested:
            left = self.deadline - time.monotonic()
            per_pass = statistics.median(durations) if durations else 60.0
            reps = max(2, int(left / max(per_pass, 0.1)))
            grace = max(30.0, 0.2 * self.minutes * 60)
            print(f"level (a): one runner, --repetitions {reps}, random interleaving "
                  f"(a run of (b) took {per_pass:.1f} s; {left:.0f} s left)", flush=True)
            # A round of (a) costs about one run of (b) (a session per case
            # either way): let it finish unless it takes far longer than that.
            hard_stop = max(self.deadline + grace, time.monotonic() + 1.5 * reps * per_pass + 30)
            env = {"GLIBC_TUNABLES": MALLOC_TUNABLE} if self.malloc_tunable else None
            r = self.run_child("a", [*self.extra, "--repetitions", str(reps), "--",
                                     "--benchmark_enable_random_interleaving=true"],
                               hard_stop=hard_stop, env=env)
            self.flush_window()
            r["index"] = "a"
            r["repetitions"] = reps
            self.level_a = r
            i = r["info"] or {}
            print(f"level (a): exit {r['exit']}, {r['seconds']:.1f} s, {i.get('measured', '?')} cases x "
                  f"{reps} repetitions (~{i.get('measured', 0) * reps} sessions, ~{i.get('trials', '?')} trials, "
                  f"~{i.get('latency_trials', '?')} with a histogram); ours left after it: {len(r['own_after'])}"
                  + (f" ({r['problem']})" if r["problem"] else ""), flush=True)
        return self.summarize(baseline)

    def summarize(self, baseline: dict) -> dict:
        reasons, b_report = judge_level_b(self.runs)
        a_report = None
        if self.level_a is not None:
            a = self.level_a
            complete = a["info"] is not None and a["info"]["complete"] and not a["stopped_at_deadline"]
            ra, a_report = judge_level_a(a["samples"], a["info"] if complete else None,
                                         judge_maps=not self.malloc_tunable)
            reasons += ra
            # Stopped by us at the hard deadline: not a failure of the run (but
            # its trials are unknown, so its RSS is not judged).
            rb, _ = judge_level_b([{**a, "peak": None, "exit": 0 if a["stopped_at_deadline"] else a["exit"]}])
            rb = [x for x in rb if not x.startswith("runs:")]
            reasons += [x.replace("run a:", "level (a) run:") for x in rb]
            a_report.update({"exit": a["exit"], "problem": a["problem"], "seconds": a["seconds"],
                             "repetitions": a["repetitions"], "result": a["info"],
                             "own_left_after": a["own_after"], "stopped_at_deadline": a["stopped_at_deadline"]})
        all_samples = self.samples

        def span(key):
            vals = [s[key] for s in all_samples if s.get(key) is not None]
            return {"start": vals[0], "end": vals[-1], "peak": max(vals)} if vals else None
        runs_done = len(self.runs) + (1 if self.level_a else 0)
        cases_run = sum((r["info"] or {}).get("cases", 0) for r in self.runs)
        if self.level_a and self.level_a["info"]:
            cases_run += self.level_a["info"]["measured"] * self.level_a["repetitions"]
        verdict = "interrupted" if self.stop_requested else ("flat" if not reasons else "not flat")
        return {
            "verdict": verdict,
            "reasons": reasons,
            "minutes_requested": self.minutes,
            "seconds": round(self.elapsed(), 1),
            "binary": str(self.binary),
            "run_args": ["--min-time", str(self.min_time), *self.extra],
            "runs_done": runs_done,
            "cases_run": cases_run,
            "rss_kib": span("rss_kib"), "fds": span("fds"), "threads": span("threads"),
            "maps": span("maps"), "objects": span("objects"),
            "baseline": {k: len(v) for k, v in baseline.items()},
            "level_b": {
                "runs": [{"index": r["index"], "exit": r["exit"], "problem": r["problem"], "seconds": r["seconds"],
                          "interrupted": r["interrupted"],
                          "cases": (r["info"] or {}).get("cases"), "measured": (r["info"] or {}).get("measured"),
                          "peak": r["peak"], "own_left_after": r["own_after"], "foreign_after": r["foreign_after"],
                          "unattributed_after": r["unattributed_after"]} for r in self.runs],
                "trend": b_report,
            },
            "level_a": a_report,
            "tolerances": {k: {"absolute": a, "relative": r} for k, (a, r) in TOLERANCES.items()},
            "workdir": str(self.workdir),
        }


def _die_with_parent():
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def find_binary(given: str | None) -> Path:
    if given:
        p = Path(given)
        if not (p.is_file() and os.access(p, os.X_OK)):
            raise SystemExit(f"soak: --binary {given}: not an executable file")
        return p.resolve()
    p = REPO / "build" / "bin" / "ipcbench"
    if not p.exists():
        print("soak: building build/bin/ipcbench", file=sys.stderr)
        subprocess.run([str(REPO / "scripts" / "deps")], check=True, cwd=REPO)
        subprocess.run(["cmake", "-S", ".", "-B", "build", "-DCMAKE_BUILD_TYPE=Release"], check=True, cwd=REPO,
                       stdout=subprocess.DEVNULL)
        subprocess.run(["cmake", "--build", "build", f"-j{os.cpu_count() or 1}", "--target", "ipcbench"],
                       check=True, cwd=REPO)
    return p


def main(argv: list[str]) -> int:
    extra: list[str] = []
    if "--" in argv:
        i = argv.index("--")
        argv, extra = argv[:i], argv[i + 1:]
    ap = argparse.ArgumentParser(prog="scripts/soak", description="Soak: run the suite for N minutes, check flatness.")
    ap.add_argument("--minutes", type=float, default=10.0, help="how long (10)")
    ap.add_argument("--binary", help="ipcbench executable (default build/bin/ipcbench, built if missing)")
    ap.add_argument("--out", help="write the JSON summary here")
    ap.add_argument("--interval", type=float, default=1.0, help="seconds between samples (1)")
    ap.add_argument("--objects-interval", type=float, default=2.0, help="seconds between IPC object listings (2)")
    ap.add_argument("--window", type=float, default=10.0, help="seconds of samples per table row (10)")
    ap.add_argument("--min-time", type=float, default=0.02, help="ipcbench --min-time per case (0.02)")
    ap.add_argument("--native-malloc", action="store_true",
                    help="level (a) without the mmap_threshold tunable (RSS then includes heap fragmentation)")
    ap.add_argument("--share-a", type=float, default=0.5, help="part of the time for level (a), one runner (0.5)")
    a = ap.parse_args(argv)
    if not (a.minutes > 0 and a.interval > 0 and a.objects_interval > 0 and a.min_time > 0 and 0 <= a.share_a < 1):
        print("soak: --minutes, --interval, --objects-interval, --min-time must be > 0, --share-a in [0, 1)",
              file=sys.stderr)
        return 2
    for bad in ("--repetitions", "--min-time", "--out"):
        if any(x == bad or x.startswith(bad + "=") for x in extra):
            print(f"soak: do not pass {bad} after --: the soak sets it", file=sys.stderr)
            return 2
    soak = Soak(binary=find_binary(a.binary), minutes=a.minutes, extra=extra, interval=a.interval,
                objects_interval=a.objects_interval, window=a.window, min_time=a.min_time, share_a=a.share_a,
                malloc_tunable=not a.native_malloc)

    def on_signal(signum, _frame):
        soak.stop_requested = True
        if soak.child is not None and soak.child.poll() is None:
            soak.child.send_signal(signal.SIGINT)
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)

    summary = soak.run()
    if a.out:
        tmp = Path(a.out + ".tmp")
        tmp.write_text(json.dumps(summary, indent=2) + "\n")
        tmp.replace(a.out)
    print_summary(summary)
    if summary["verdict"] == "interrupted":
        return 130
    return 0 if summary["verdict"] == "flat" else 1


def print_summary(s: dict):
    def span(key, metric):
        v = s.get(key)
        return "-" if not v else f"{fmt(metric, v['start'])} / {fmt(metric, v['end'])} / {fmt(metric, v['peak'])}"
    print(f"soak: {s['runs_done']} runs, {s['cases_run']} cases, {s['seconds']:.0f} s; "
          f"start/end/peak RSS {span('rss_kib', 'rss_kib')}, fds {span('fds', 'fds')}, "
          f"threads {span('threads', 'threads')}, our objects {span('objects', 'objects')}")
    a = s.get("level_a")
    if a and a.get("rss", {}).get("judged"):
        r = a["rss"]
        print(f"soak: one runner: RSS grew {fmt('rss_kib', r['growth_kib'])} over ~{r['latency_trials']} latency "
              f"trials ({r['growth_per_latency_trial_kib']} KiB each; histogram 31 KiB), allowed "
              f"{fmt('rss_kib', r['allowed_growth_kib'])}")
    for reason in s["reasons"]:
        lead = "so far" if s["verdict"] == "interrupted" else "NOT FLAT"
        print(f"soak: {lead}: {reason}", file=sys.stderr)
    print(f"soak: verdict: {s['verdict']}")


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except Stop:
        sys.exit(130)
