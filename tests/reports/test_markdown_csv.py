"""The Markdown summary and the CSV of every case."""

import csv
import io
import re

from reportutil import DATA, doctor, load, run_script, save

from ipcbench_report import markdown, model


def summary(tmp_path, *files):
    out = tmp_path / "out"
    proc = run_script("report", *files, "-o", out)
    assert proc.returncode == 0, proc.stderr
    return (out / "summary.md").read_text(encoding="utf-8"), (out / "cases.csv").read_text()


def table_rows(md):
    return [line for line in md.splitlines() if line.startswith("| ")]


def test_summary_one_row_per_mechanism_with_sizes(tmp_path):
    md, _ = summary(tmp_path, DATA / "all-mechanisms.json")
    rows = table_rows(md)
    header = rows[0]
    for col in ("p50 64 B", "p99 64 B", "throughput 64 B", "p50 1 KiB", "throughput 16 KiB"):
        assert col in header
    assert len(rows) == 1 + 15
    assert any(r.startswith("| `shm-spin`") for r in rows)
    assert re.search(r"\d+(\.\d+)? (ns|µs|ms)", md) and re.search(r"(MB|GB)/s", md)


def test_best_value_per_column_is_bold(tmp_path):
    md, _ = summary(tmp_path, DATA / "all-mechanisms.json")
    rows = [r.strip("|").split("|") for r in table_rows(md)[1:]]
    ncols = len(rows[0])
    for j in range(1, ncols):
        bold = [r[j] for r in rows if "**" in r[j]]
        assert len(bold) >= 1, f"column {j} has no best value"
    run = model.load(DATA / "all-mechanisms.json")
    p50 = {c.key.mechanism: c.value("p50_ns") for c in run.case_list("latency")
           if c.key.size == 64}
    fastest = min(p50, key=p50.get)
    assert any(r[0].strip() == f"`{fastest}`" and "**" in r[1] for r in rows)


def test_summary_multi_host_has_host_column(tmp_path):
    doc = load(DATA / "all-mechanisms.json")
    other = doctor(doc)
    other["ipcbench"]["host"]["hostname"] = "other-box"
    md, _ = summary(tmp_path, DATA / "all-mechanisms.json", save(other, tmp_path / "o.json"))
    rows = table_rows(md)
    assert rows[0].startswith("| host | mechanism")
    assert len(rows) == 1 + 30
    assert sum("other-box" in r for r in rows) == 15


def test_summary_lists_failures(tmp_path):
    out = tmp_path / "out"
    proc = run_script("report", DATA / "interrupted.json", "--allow-incomplete", "-o", out)
    assert proc.returncode == 0
    md = (out / "summary.md").read_text()
    assert "**failed**" in md and "interrupted by a signal" in md
    assert "incomplete run" in md


def test_summary_sizes_prefer_defaults():
    run = model.load(DATA / "all-mechanisms.json")
    assert markdown.summary_sizes([run]) == [64, 1024, 16384]


def test_csv_has_every_entry_and_numeric_fields(tmp_path):
    _, text = summary(tmp_path, DATA / "reps5.json")
    rows = list(csv.DictReader(io.StringIO(text)))
    doc = load(DATA / "reps5.json")
    assert len(rows) == len(doc["benchmarks"])
    assert {r["run_type"] for r in rows} == {"iteration", "aggregate"}
    assert {r["aggregate_name"] for r in rows} >= {"mean", "median", "stddev", "cv"}
    lat = next(r for r in rows if r["pattern"] == "latency" and r["status"] == "ok")
    for field in ("p50_ns", "p99_ns", "p9999_ns", "real_time", "bytes_per_second",
                  "runner_cpu_ns_per_msg", "peer_cpu_ns_per_msg", "messages"):
        float(lat[field])
    assert all(r["status"] == "ok" for r in rows)


def test_csv_skipped_rows_carry_the_reason(tmp_path):
    _, text = summary(tmp_path, DATA / "all-mechanisms.json")
    skipped = [r for r in csv.DictReader(io.StringIO(text)) if r["status"] == "skipped"]
    assert len(skipped) == 4
    assert all("exceeds" in r["message"] and r["p50_ns"] == "" for r in skipped)


def test_csv_real_run(tmp_path, real_result):
    _, text = summary(tmp_path, real_result)
    rows = list(csv.DictReader(io.StringIO(text)))
    assert len(rows) == len(load(real_result)["benchmarks"])
    assert all(float(r["real_time"]) > 0 for r in rows if r["status"] == "ok")
