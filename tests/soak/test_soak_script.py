"""Tests of scripts/soak.py: the verdict logic on synthetic samples, the
attribution of IPC objects, the trial estimate, and (with IPCBENCH_BINARY
set, as ctest's soak_selftest does) a 6-second soak on one mechanism."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
spec = importlib.util.spec_from_file_location("soak", REPO / "scripts" / "soak.py")
soak = importlib.util.module_from_spec(spec)
sys.modules["soak"] = soak
spec.loader.exec_module(soak)


def sample(t, fds=6, threads=2, maps=130, peers=1, rss=20_000, anon=10_000, shmem=0, objects=1):
    return {"t": t, "fds": fds, "threads": threads, "maps": maps, "peers": peers, "rss_kib": rss,
            "anon_kib": anon, "shmem_kib": shmem, "objects": objects}


def flat_samples(n=60):
    # Sessions come and go: fds and shared memory move with the mechanism, but do not grow.
    return [sample(t, fds=3 + (t * 7) % 9, shmem=(t % 5) * 1000, anon=10_000 + 50 * t) for t in range(n)]


INFO = {"latency_trials": 600, "trials": 1200, "reported_rows": 1300, "complete": True}


def test_flat_samples_pass():
    reasons, report = soak.judge_level_a(flat_samples(), INFO)
    assert reasons == []
    assert report["fds"]["judged"] and report["rss"]["judged"]


def test_growing_fds_fail_with_a_reason():
    samples = [sample(t, fds=6 + t // 2) for t in range(60)]  # one more descriptor every 2 s
    reasons, _ = soak.judge_level_a(samples, INFO)
    assert len(reasons) == 1
    assert "fds grows" in reasons[0] and "one runner" in reasons[0]


def test_the_window_starts_with_the_first_peer():
    # Calibration (no peer yet) has fewer descriptors: not a growth.
    samples = [sample(t, fds=3, peers=0) for t in range(20)] + [sample(t, fds=8) for t in range(20, 80)]
    reasons, report = soak.judge_level_a(samples, INFO)
    assert reasons == [], reasons
    assert report["fds"]["first_min"] == 8


def test_rss_growth_explained_by_trials_passes_unexplained_fails():
    explained = [sample(t, anon=2_000 + t * 300) for t in range(60)]       # ~17.7 MiB
    assert soak.judge_level_a(explained, INFO)[0] == []
    leaking = [sample(t, anon=2_000 + t * 2_000) for t in range(60)]       # ~115 MiB
    reasons, report = soak.judge_level_a(leaking, INFO)
    assert any("RSS (anonymous) grew" in r for r in reasons)
    assert report["rss"]["growth_per_latency_trial_kib"] > 31


def test_two_peers_at_once_fail():
    samples = flat_samples()
    samples[40]["peers"] = 2
    reasons, _ = soak.judge_level_a(samples, INFO)
    assert any("2 peers alive at once" in r for r in reasons)


def test_incomplete_run_does_not_judge_rss_and_few_samples_judge_nothing():
    reasons, report = soak.judge_level_a(flat_samples(), None)
    assert reasons == [] and not report["rss"]["judged"]
    reasons, report = soak.judge_level_a(flat_samples(4), INFO)
    assert reasons == [] and not report["fds"]["judged"]


def run(i, rss=50_000, fds=13, threads=4, maps=134, exit=0, left=(), samples=5):
    return {"index": i, "exit": exit, "problem": None if exit == 0 else "failed tcp/sync/latency/64: boom",
            "own_after": list(left), "peak": {"rss_kib": rss, "fds": fds, "threads": threads, "maps": maps},
            "samples": [{}] * samples}


def test_a_run_of_one_sample_has_no_fd_peak_to_judge():
    # One sample per run catches a case's extra descriptors or not: no trend.
    blinking = [run(i, fds=8 if i < 3 else 13, samples=1) for i in range(1, 7)]
    assert soak.judge_level_b(blinking)[0] == []
    # The same figures from runs sampled enough are a trend.
    assert soak.judge_level_b([run(i, fds=8 if i < 3 else 13) for i in range(1, 7)])[0]


def test_runs_flat_pass_and_trends_fail():
    flat = [run(i, rss=50_000 + (i % 2) * 1000) for i in range(1, 7)]
    assert soak.judge_level_b(flat)[0] == []
    growing = [run(i, fds=13 + 3 * i) for i in range(1, 7)]
    reasons, report = soak.judge_level_b(growing)
    assert len(reasons) == 1 and "peak fds per run trends upward" in reasons[0]
    assert report["fds"]["judged"]
    rss = [run(i, rss=50_000 * (1 + i / 5)) for i in range(1, 7)]
    assert any("peak rss_kib" in r for r in soak.judge_level_b(rss)[0])


def test_a_failed_run_and_leftovers_are_named():
    runs = [run(1), run(2, exit=1), run(3, left=["/tmp/ipcbench.42.abc", "sysv-msg id=7"])]
    reasons, _ = soak.judge_level_b(runs)
    assert any(r.startswith("run 2: exit status 1: failed tcp/sync/latency/64") for r in reasons)
    assert any(r.startswith("run 3: 2 IPC objects") and "/tmp/ipcbench.42.abc" in r for r in reasons)


def test_objects_are_attributed_by_pid():
    lines = ["/tmp/ipcbench.42.abc", "/tmp/ipcbench.99.xyz", "/dev/shm/ipcbench.42.case1-42",
             "sysv-msg id=7", "sysv-msg id=8", "sysv-sem id=3",
             "process 43 /x/ipcbench peer --mechanism pipe --address fd:3,4 --parent 42 ",
             "process 100 /x/ipcbench peer --mechanism tcp --address 127.0.0.1:5 --parent 99 "]
    sysv = {("msg", "7"): [42, 43], ("msg", "8"): [99]}
    out = soak.classify(lines, {42}, sysv)
    assert out["own"] == ["/tmp/ipcbench.42.abc", "/dev/shm/ipcbench.42.case1-42", "sysv-msg id=7",
                          lines[6].strip()]
    assert out["foreign"] == ["/tmp/ipcbench.99.xyz", "sysv-msg id=8", lines[7].strip()]
    assert out["unattributed"] == ["sysv-sem id=3"]


def test_short_soak_on_one_mechanism(tmp_path):
    out = tmp_path / "soak.json"
    r = subprocess.run([str(REPO / "scripts" / "soak"), "--minutes", "0.1", "--binary", os.environ["IPCBENCH_BINARY"],
                        "--out", str(out), "--", "--mechanisms", "pipe", "--sizes", "64", "--no-calibration"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    s = json.loads(out.read_text())
    assert s["verdict"] == "flat" and s["reasons"] == []
    assert s["runs_done"] >= 2 and s["cases_run"] >= 8
    assert all(run["exit"] == 0 and run["own_left_after"] == [] for run in s["level_b"]["runs"])
    assert s["level_a"]["exit"] == 0 and s["level_a"]["own_left_after"] == []
    assert "verdict: flat" in r.stdout
