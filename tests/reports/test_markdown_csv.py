"""The Markdown summary and the CSV of every case."""

import copy
import csv
import io
import math
import re

from reportutil import DATA, as_v2, closed_loop, doctor, load, run_script, save
from summaryutil import ROUND_TRIP, THROUGHPUT, headings, paragraph, question, section, table

from ipcbench_report import markdown, model, units


def summary(tmp_path, *files):
    out = tmp_path / "out"
    proc = run_script("report", *files, "-o", out)
    assert proc.returncode == 0, proc.stderr
    return (out / "summary.md").read_text(encoding="utf-8"), (out / "cases.csv").read_text()


def test_summary_one_table_per_question_with_a_row_per_mechanism(tmp_path):
    md, _ = summary(tmp_path, DATA / "all-mechanisms.json")
    for heading in (ROUND_TRIP, THROUGHPUT):
        head, rows = question(md, heading)
        assert head == ["#", "mechanism", "64 B", "1 KiB", "16 KiB"], heading
        assert len(rows) == 15 and "`shm-spin`" in rows
    assert re.search(r"\d+(\.\d+)? (ns|µs|ms)", section(md, ROUND_TRIP))
    assert re.search(r"(MB|GB)/s", section(md, THROUGHPUT))


def test_best_value_per_size_is_bold(tmp_path):
    md, _ = summary(tmp_path, DATA / "all-mechanisms.json")
    for heading in (ROUND_TRIP, THROUGHPUT):
        head, rows = question(md, heading)
        for size in head[2:]:
            column = [r[size] for r in rows.values()]
            assert sum("**" in c for c in column) >= 1, f"{heading} {size} has no best value"
            # every other figure says how far it is from the best
            assert all(re.search(r" ×[\d.]+", c) for c in column if "**" not in c and c != "–")
    run = model.load(DATA / "all-mechanisms.json")
    p50 = {c.key.mechanism: c.value("p50_ns") for c in run.case_list("latency")
           if c.key.size == 64}
    fastest = min(p50, key=p50.get)
    assert question(md)[1][f"`{fastest}`"]["64 B"] == f"**{units.ns(p50[fastest])}**"


def test_summary_multi_host_has_host_column(tmp_path):
    doc = load(DATA / "all-mechanisms.json")
    other = doctor(doc)
    other["ipcbench"]["host"]["hostname"] = "other-box"
    md, _ = summary(tmp_path, DATA / "all-mechanisms.json", save(other, tmp_path / "o.json"))
    for heading in (ROUND_TRIP, THROUGHPUT):
        head, rows = table(section(md, heading))
        assert head[:3] == ["#", "host", "mechanism"]
        assert len(rows) == 30
        assert sum(r[1] == "other-box" for r in rows) == 15
        assert [r[0] for r in rows] == [str(i) for i in range(1, 31)]


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


# --- the summary's layout: one table per question, the top first -----------------

def ratio_text(ratio):
    """The ratio to the best as a cell writes it: '×1.23', '×12.3', '×123'."""
    return "×" + (f"{ratio:.2f}" if ratio < 10 else f"{ratio:.1f}" if ratio < 100
                  else f"{ratio:.0f}")


def test_round_trip_table_ranks_the_best_first(tmp_path):
    md, _ = summary(tmp_path, DATA / "all-mechanisms.json")
    run = model.load(DATA / "all-mechanisms.json")
    sizes = (64, 1024, 16384)
    p50 = {(c.key.mechanism, c.key.size): c.value("p50_ns") for c in run.case_list("latency")}
    best = {s: min(v for (_m, size), v in p50.items() if size == s) for s in sizes}

    def score(mech):
        ratios = [p50[(mech, s)] / best[s] for s in sizes if (mech, s) in p50]
        return math.exp(sum(math.log(r) for r in ratios) / len(ratios))
    mechs = {m for m, _s in p50}
    partial = [m for m in mechs if not all((m, s) in p50 for s in sizes)]
    assert sorted(partial) == ["posix-mq", "sysv-mq"]  # skipped at 16 KiB

    head, rows = table(section(md, ROUND_TRIP))
    assert [r[0] for r in rows] == [str(i) for i in range(1, 16)]
    # By the sizes each has: a queue that cannot carry 16 KiB is not sent last.
    assert [r[1] for r in rows] == [f"`{m}`" for m in sorted(mechs, key=score)]
    by = {r[1].strip("`"): dict(zip(head, r)) for r in rows}
    for s in sizes:
        col = units.size(s)
        bold = [m for m, r in by.items() if r[col].startswith("**")]
        assert len(bold) == 1 and by[bold[0]][col] == f"**{units.ns(best[s])}**"
        assert p50[(bold[0], s)] == best[s]
        for m, r in by.items():
            if m != bold[0] and (m, s) in p50:
                assert r[col] == f"{units.ns(p50[(m, s)])} {ratio_text(p50[(m, s)] / best[s])}"
    assert by["posix-mq"]["16 KiB"] == "–"
    text = paragraph(md)
    assert "geometric mean" in text and "over the sizes the row was measured at" in text


def test_one_table_per_question(tmp_path):
    md, _ = summary(tmp_path, DATA / "all-mechanisms.json")
    assert headings(md) == [ROUND_TRIP, THROUGHPUT, "Skipped cases"]
    for heading in (ROUND_TRIP, THROUGHPUT):
        text = section(md, heading)
        tables = re.findall(r"(?m)^\|[-:|]+\|$", text)
        assert len(tables) == 1, heading
    out = tmp_path / "v2"
    out.mkdir()
    md, _ = summary(out, save(closed_loop(as_v2(), 1), out / "v2.json"))
    assert headings(md) == [ROUND_TRIP, THROUGHPUT, "Sync vs async"]
    assert question(md)[0] == question(md, THROUGHPUT)[0] == ["#", "mechanism", "64 B", "4 KiB"]
    # the long pair table is collapsed, with a line saying what it holds
    assert "<details><summary>12 pairs: each mechanism's sync → async p50 round trip" in md
    assert "p99" not in md  # the one-table summary's p99 columns are gone


def test_async_latency_over_window_1_is_not_ranked_but_listed_once(tmp_path):
    doc = closed_loop(closed_loop(as_v2(), 1), 16, mechanism="tcp")
    md, _ = summary(tmp_path, save(doc, tmp_path / "w16.json"))
    _head, rows = question(md)
    assert "`tcp` async" not in rows
    assert {"`tcp` sync", "`udp` async", "`zmq-tcp` async"} <= set(rows)
    assert "`tcp` async" in question(md, THROUGHPUT)[1]  # its throughput is ranked
    text = paragraph(md)
    assert ("Not ranked, not one message at a time: `tcp` async at 64 B, 4 KiB "
            "(window 16: includes queueing).") in text
    assert md.count("`tcp` async at") == 1


def skip(doc, mechanism, reason):
    """A copy of doc whose cases of mechanism were skipped, each with
    reason.format(size=its size), as the suite writes a skipped case."""
    doc = copy.deepcopy(doc)
    keep = ("name", "family_index", "per_family_instance_index", "run_name", "run_type",
            "repetitions", "repetition_index", "threads", "time_unit", "mechanism", "mode",
            "pattern", "message_size")
    out = []
    for e in doc["benchmarks"]:
        if e["mechanism"] == mechanism:
            e = {k: e[k] for k in keep if k in e}
            e.update(iterations=0, real_time=0.0, cpu_time=0.0, placement="unknown", cpus=[],
                     skipped=True, skip_message=reason.format(size=e["message_size"]))
        out.append(e)
    doc["benchmarks"] = out
    return doc


def test_same_reason_is_listed_once(tmp_path):
    doc = skip(closed_loop(as_v2(), 1), "zmq-tcp",
               "message size {size} exceeds zmq-tcp's limit of 32 bytes")
    md, _ = summary(tmp_path, save(doc, tmp_path / "skipped.json"))
    assert headings(md)[-1] == "Skipped cases"
    items = [line for line in section(md, "Skipped cases").splitlines() if line.startswith("- ")]
    assert items == ["- skipped: `zmq-tcp` sync, async · latency, throughput 64 B, 4 KiB: "
                     "the message size exceeds zmq-tcp's limit of 32 bytes"]
    assert "`zmq-tcp`" not in question(md)[1] and "`zmq-tcp`" not in question(md, THROUGHPUT)[1]
    # failed cases: one line per reason, the cases it covers grouped by mechanism
    out = tmp_path / "out"
    assert run_script("report", DATA / "interrupted.json", "--allow-incomplete",
                      "-o", out).returncode == 0
    md = (out / "summary.md").read_text(encoding="utf-8")
    assert headings(md)[-1] == "Failed cases"
    items = [line for line in section(md, "Failed cases").splitlines() if line.startswith("- ")]
    assert items == [
        "- **failed**: `pipe` sync · latency 1 KiB: interrupted by a signal",
        "- **failed**: `pipe` sync · throughput 64 B, 1 KiB; `tcp` sync · latency, throughput "
        "64 B, 1 KiB: not run: the run was interrupted"]
    assert md.count("not run: the run was interrupted") == 1


def test_default_suite_skips_grouped(tmp_path):
    """all-mechanisms: posix-mq and sysv-mq skipped at 16 KiB, one line each."""
    md, _ = summary(tmp_path, DATA / "all-mechanisms.json")
    items = [line for line in section(md, "Skipped cases").splitlines() if line.startswith("- ")]
    assert items == [f"- skipped: `{m}` sync · latency, throughput 16 KiB: the message size "
                     f"exceeds {m}'s limit of 8192 bytes" for m in ("posix-mq", "sysv-mq")]
