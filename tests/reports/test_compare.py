"""scripts/compare: regressions found, identical runs pass, significance used
when there are enough repetitions, host mismatches refused."""

import re

from reportutil import DATA, doctor, load, run_script, save


def compare(*args):
    return run_script("compare", *args)


def test_identical_pair_passes():
    proc = compare(DATA / "all-mechanisms.json", DATA / "all-mechanisms.json")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Result: no regression." in proc.stdout
    assert "threshold only" in proc.stdout  # one repetition: no significance test


def test_injected_regression_fails(tmp_path):
    new = save(doctor(load(DATA / "all-mechanisms.json"), 1.3), tmp_path / "new.json")
    proc = compare(DATA / "all-mechanisms.json", new)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "REGRESSED" in proc.stdout and "Result: REGRESSION" in proc.stdout
    assert re.search(r"pipe/sync/latency/64 B \(cross-cpu\)\s+p50 .*\+30\.0%", proc.stdout)
    assert re.search(r"throughput .*-23\.1%", proc.stdout)  # 1/1.3 - 1


def test_improvement_does_not_fail(tmp_path):
    new = save(doctor(load(DATA / "all-mechanisms.json"), 1 / 1.3), tmp_path / "new.json")
    proc = compare(DATA / "all-mechanisms.json", new)
    assert proc.returncode == 0
    assert "improved" in proc.stdout and "0 regressed" in proc.stdout


def test_change_below_threshold_passes(tmp_path):
    new = save(doctor(load(DATA / "all-mechanisms.json"), 1.03), tmp_path / "new.json")
    assert compare(DATA / "all-mechanisms.json", new).returncode == 0
    assert compare(DATA / "all-mechanisms.json", new, "--threshold", "2").returncode == 1


def test_significance_path_with_five_repetitions(tmp_path):
    # A stored result, not one run now: how noisy a live run's repetitions
    # are depends on what else the machine does (a live p50 once spread
    # +-26% under a parallel ctest and made this case "too noisy to judge").
    real_result_reps = DATA / "reps5.json"
    same = compare(real_result_reps, real_result_reps)
    assert same.returncode == 0, same.stdout
    assert "Mann-Whitney U" in same.stdout and "U test" in same.stdout
    assert "threshold only" not in same.stdout
    worse = save(doctor(load(real_result_reps), 1.3), tmp_path / "worse.json")
    proc = compare(real_result_reps, worse)
    # 18 metrics held together: 5 vs 5 samples reach p 2/252 at best, above
    # Holm's first level 0.05/18, so a 30% change is said to be beyond what
    # these samples can judge, not called unchanged or a regression.
    assert proc.returncode == 0, proc.stdout
    assert "cannot judge (too few samples)" in proc.stdout
    assert "0 unchanged" in proc.stdout
    # One case alone (p50 and p99: level 0.025 first): the same samples are
    # a regression.
    def one_case(doc):
        doc["benchmarks"] = [e for e in doc["benchmarks"]
                             if e["name"].startswith("pipe/sync/latency/")]
        return doc
    base1 = save(one_case(load(real_result_reps)), tmp_path / "base1.json")
    worse1 = save(one_case(doctor(load(real_result_reps), 1.3)), tmp_path / "worse1.json")
    proc = compare(base1, worse1)
    assert proc.returncode == 1, proc.stdout
    # 5 vs 5 fully separated samples: exact two-sided p = 2/252
    assert "0.0079" in proc.stdout and "U test" in proc.stdout and "REGRESSED" in proc.stdout


def test_not_significant_change_is_noise(tmp_path):
    """A median that moved beyond the threshold through overlapping samples is
    not a regression when the U test says it could be chance."""
    doc = load(DATA / "reps5.json")
    doc["benchmarks"] = [e for e in doc["benchmarks"] if e["run_type"] == "iteration"]
    base = save(doc, tmp_path / "base.json")
    target = [e for e in doc["benchmarks"] if e["mechanism"] == "pipe"
              and e["pattern"] == "latency" and e["message_size"] == 64]
    values = sorted(e["p50_ns"] for e in target)
    # new samples interleave with the old ones but have a 40% higher median
    new_values = [values[0] * 0.5, values[1], values[2] * 1.4, values[3] * 1.5, values[4] * 1.6]
    for e, v in zip(sorted(target, key=lambda e: e["p50_ns"]), new_values):
        e["p50_ns"] = v
    new = save(doc, tmp_path / "new.json")
    proc = compare(base, new)
    assert proc.returncode == 0, proc.stdout
    # Five repetitions a side cannot reach Holm's first level over this
    # file's 12 metrics (2/252 > 0.05/12): said so, not called unchanged.
    assert "cannot judge (too few samples)" in proc.stdout
    assert "too noisy or too few samples to judge" in proc.stdout


def test_threshold_only_note_with_few_repetitions(tmp_path):
    new = save(doctor(load(DATA / "all-mechanisms.json"), 1.3), tmp_path / "new.json")
    proc = compare(DATA / "all-mechanisms.json", new)
    assert "fewer than 5 repetitions" in proc.stdout and "threshold only" in proc.stdout


def test_cases_in_one_run_only_are_listed_not_failed(tmp_path):
    doc = load(DATA / "all-mechanisms.json")
    doc["benchmarks"] = [e for e in doc["benchmarks"] if e["mechanism"] != "tcp"]
    proc = compare(DATA / "all-mechanisms.json", save(doc, tmp_path / "new.json"))
    assert proc.returncode == 0
    assert "tcp/sync/latency/64 B (cross-cpu): only in base" in proc.stdout
    assert "6 only in base" in proc.stdout


def test_case_that_now_fails_is_a_regression(tmp_path):
    doc = load(DATA / "all-mechanisms.json")
    e = next(e for e in doc["benchmarks"] if e["mechanism"] == "tcp")
    for k in list(e):
        if k.endswith("_ns") or k in ("histogram", "samples", "messages", "messages_lost",
                                      "bytes_per_second", "items_per_second") or "per_msg" in k:
            del e[k]
    e.update(error_occurred=True, error_message="peer died", placement="unknown", cpus=[])
    proc = compare(DATA / "all-mechanisms.json", save(doc, tmp_path / "new.json"))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "now fails" in proc.stdout


def test_different_hosts_refused_unless_cross_host(tmp_path):
    doc = load(DATA / "all-mechanisms.json")
    doc["ipcbench"]["host"]["cpu_model"] = "Some Other CPU"
    other = save(doc, tmp_path / "other.json")
    proc = compare(DATA / "all-mechanisms.json", other)
    assert proc.returncode == 2
    assert len(proc.stderr.strip().splitlines()) == 1 and "different host" in proc.stderr
    proc = compare(DATA / "all-mechanisms.json", other, "--cross-host")
    assert proc.returncode == 0
    assert "WARNING: comparing across hosts" in proc.stdout


def test_outputs_html_and_markdown(tmp_path):
    new = save(doctor(load(DATA / "all-mechanisms.json"), 1.3), tmp_path / "new.json")
    out = tmp_path / "diff"
    proc = compare(DATA / "all-mechanisms.json", new, "-o", out)
    assert proc.returncode == 1
    md = (out / "compare.md").read_text()
    html = (out / "compare.html").read_text()
    assert "**regression**" in md and "| `pipe/sync/latency/64 B (cross-cpu)` | p50 |" in md
    assert "REGRESSED" in md
    assert 'id="fig-compare"' in html and "data-compare-bars" in html
    assert 'class="data sortable"' in html and "<script" in html
