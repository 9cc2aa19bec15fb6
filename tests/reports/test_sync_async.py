"""Sync vs async only where both mean the same thing (issue 15 point 11).

The report pairs a mechanism's sync and async latency only when the async
case is a closed loop at window 1 (the round trip of one message at a time),
leaves the other pairs out with one line saying how many and why, labels a
pair whose sides waited differently ('sync blocks, async spins'), and marks
what besides the mechanism set a figure: a sender behind its schedule (†),
the harness's flow control (‡), the mechanism's own buffer (informative).
Every table states how an async figure kept messages in flight.

The files are the host-crossing run (tcp, udp, zmq-tcp; sync and async;
64 B and 4 KiB) made version 2 by reportutil.as_v2 and given the version-2
fields by closed_loop, open_loop_v2, set_wait and set_stream; version-1
files (the run itself) must still render."""

import copy
import csv
import io
import re

import pytest

from reportutil import (HOSTCROSSING, as_v2, closed_loop, entries, figure_svg, html_table,
                        load, open_loop_v2, run_script, save, set_stream, set_wait)
from summaryutil import THROUGHPUT, pair_rows as md_pairs, paragraph, question, section


from ipcbench_report import model

MECHANISMS = ("tcp", "udp", "zmq-tcp")
SIZES = ("64 B", "4 KiB")
# The two sentences on async latency (model.CLOSED_LOOP_TEXT, OPEN_LOOP_TEXT).
CLOSED_LOOP = ("Closed-loop async latency keeps a window of messages in flight and times each "
               "round trip: at window 1 it is the round trip of the non-blocking path")
OPEN_LOOP = ("Open-loop async latency sends at a fixed rate and counts each round trip from "
             "the message's intended send time")


def report(tmp_path, doc, name="run.json"):
    """(report.html, summary.md, CSV rows) of scripts/report on doc."""
    out = tmp_path / "out"
    proc = run_script("report", save(doc, tmp_path / name), "-o", out)
    assert proc.returncode == 0, proc.stderr
    return ((out / "report.html").read_text(encoding="utf-8"),
            (out / "summary.md").read_text(encoding="utf-8"),
            list(csv.DictReader(io.StringIO((out / "cases.csv").read_text(encoding="utf-8")))))


def v2(window=1):
    """The host-crossing run as version 2: async latency in a closed loop of
    window, every row waiting by blocking."""
    return set_wait(closed_loop(as_v2(), window), "block", "block")


def pair_rows(html):
    """{(mechanism, pattern, size): row} of the sync-vs-async table."""
    return {(r[0], r[1], r[2]): r for r in html_table(html, "sync-async-table")}


def left_out_note(html):
    m = re.search(r'<p class="note" id="modes-left-out">(.*?)</p>', html, flags=re.S)
    return m.group(1).replace("&#x27;", "'") if m else ""


summary_section = section


def case_table(html):
    """(header, rows) of the HTML case table."""
    m = re.search(r'<table[^>]*id="cases-table".*?<thead><tr>(.*?)</tr>', html, flags=re.S)
    head = [re.sub(r"<[^>]+>", "", h) for h in re.findall(r"<th\b[^>]*>(.*?)</th>", m.group(1))]
    return head, html_table(html, "cases-table")


def case_row(html, mechanism, mode, pattern, size="64 B"):
    head, rows = case_table(html)
    for r in rows:
        if r[:4] == [mechanism, mode, pattern, size]:
            return dict(zip(head, r))
    raise AssertionError(f"no row {mechanism}/{mode}/{pattern}/{size}")


# --- which pairs are shown ------------------------------------------------------

def test_window_1_async_latency_pairs_with_sync(tmp_path):
    html, md, _rows = report(tmp_path, v2(window=1))
    pairs = pair_rows(html)
    for mech in MECHANISMS:
        for size in SIZES:
            for pattern in ("p50 latency", "throughput"):
                assert (mech, pattern, size) in pairs, (mech, pattern, size)
    row = pairs[("tcp", "p50 latency", "64 B")]
    assert row[7] == "1"  # async in flight
    assert left_out_note(html) == "" and "left out" not in md
    latency = figure_svg(html, "modes")
    assert "p50 round-trip latency at 64 B" in latency
    summary = md_pairs(md)
    for mech in MECHANISMS:
        for figure in ("p50", "throughput"):
            row = summary[(f"`{mech}`", figure)]  # sync → async (async / sync) per size
            assert all(re.fullmatch(r"\S+ \S+ → \S+ \S+ \([\d.]+×\)", row[s])
                       for s in SIZES), row
    assert summary[("`tcp`", "p50")]["async in flight"] == "1"
    assert summary[("`udp`", "throughput")]["async in flight"] == "limit 32 msgs"


def test_model_pairs_closed_loop_window_1_only(tmp_path):
    run = model.load(save(v2(window=1), tmp_path / "w1.json"))
    pairs = model.sync_vs_async([run])
    assert len(pairs) == 12 and not any(p.left_out for p in pairs)
    run = model.load(save(open_loop_v2(v2(), 2000, mechanism="udp"), tmp_path / "ol.json"))
    left = {(p.key.mechanism, p.key.size) for p in model.sync_vs_async([run]) if p.left_out}
    assert left == {("udp", 64), ("udp", 4096)}


def test_open_loop_async_latency_is_left_out_with_a_note(tmp_path):
    html, md, _rows = report(tmp_path, open_loop_v2(v2(), 2000, mechanism="udp"))
    pairs = pair_rows(html)
    assert ("udp", "p50 latency", "64 B") not in pairs
    assert ("udp", "throughput", "64 B") in pairs  # streams pair as before
    assert ("tcp", "p50 latency", "64 B") in pairs
    note = left_out_note(html)
    assert note.startswith("2 sync vs async latency pair(s) left out"), note
    assert "closed loop at window 1" in note
    assert "udp 64 B (open loop 2000/s: latency from the intended send times)" in note
    assert "udp 4 KiB (open loop 2000/s" in note and "tcp" not in note
    section = summary_section(md, "Sync vs async")
    summary = md_pairs(md)
    assert ("`udp`", "p50") not in summary and summary[("`udp`", "throughput")]["64 B"] != "–"
    assert summary[("`tcp`", "p50")]["64 B"] != "–"
    assert "2 sync vs async latency pair(s) left out" in section
    assert "udp 64 B (open loop 2000/s" in section


def test_window_16_async_latency_is_left_out_with_a_note(tmp_path):
    doc = closed_loop(v2(), 16, mechanism="zmq-tcp", size=64)
    html, md, _rows = report(tmp_path, doc)
    pairs = pair_rows(html)
    assert ("zmq-tcp", "p50 latency", "64 B") not in pairs
    assert ("zmq-tcp", "p50 latency", "4 KiB") in pairs
    note = left_out_note(html)
    assert note.startswith("1 sync vs async latency pair(s) left out"), note
    assert "zmq-tcp 64 B (window 16: includes queueing)" in note
    assert "1 sync vs async latency pair(s) left out" in summary_section(md, "Sync vs async")
    zmq = md_pairs(md)[("`zmq-tcp`", "p50")]
    assert zmq["64 B"] == "–" and zmq["4 KiB"] != "–"


def test_only_left_out_latency_draws_throughput_only(tmp_path):
    html, _md, _rows = report(tmp_path, open_loop_v2(v2(), 5000))
    svg = figure_svg(html, "modes")
    assert svg and "throughput at 64 B" in svg and "p50 round-trip latency" not in svg
    assert left_out_note(html).startswith("6 sync vs async latency pair(s) left out")


# --- how the two sides waited ----------------------------------------------------

def test_pair_whose_wait_differs_is_labelled(tmp_path):
    doc = set_wait(v2(), "block", "spin", mechanism="tcp")
    doc = set_wait(doc, "block", "poll", mechanism="udp")
    html, md, _rows = report(tmp_path, doc)
    pairs = pair_rows(html)
    assert pairs[("tcp", "p50 latency", "64 B")][8] == "sync blocks, async spins"
    assert pairs[("tcp", "throughput", "64 B")][8] == "sync blocks, async spins"
    assert pairs[("udp", "p50 latency", "64 B")][8] == "sync blocks, async polls"
    assert pairs[("zmq-tcp", "p50 latency", "64 B")][8] == "both block"  # same wait: no label
    assert 'class="wait-differs"' in html
    assert "sync blocks, async spins" in figure_svg(html, "modes")
    summary = md_pairs(md)
    assert summary[("`tcp`", "p50")]["note"] == "sync blocks, async spins"
    assert summary[("`tcp`", "throughput")]["note"] == "sync blocks, async spins"
    assert summary[("`udp`", "p50")]["note"] == "sync blocks, async polls"
    assert summary[("`zmq-tcp`", "p50")]["note"] == "–"  # same wait: no label
    assert case_row(html, "tcp", "async", "latency")["wait"] == "spin"


def test_version_1_pairs_have_no_wait_label(tmp_path):
    doc = copy.deepcopy(load(HOSTCROSSING))
    for e in entries(doc, "async", "latency"):
        e["window"] = 1  # version 1 wrote the closed loop's window on the row
    html, _md, _rows = report(tmp_path, doc)
    pairs = pair_rows(html)
    assert ("tcp", "p50 latency", "64 B") in pairs
    assert all(r[8] == "" for r in pairs.values())


# --- markers: what besides the mechanism set a figure ------------------------------

def test_sender_behind_is_marked_everywhere(tmp_path):
    doc = open_loop_v2(v2(), 2000, mechanism="udp", sender_behind=True)
    html, md, rows = report(tmp_path, doc)
    row = case_row(html, "udp", "async", "latency")
    assert row["p50"].endswith(" †")
    assert row["limited by"] == "† sender behind schedule"
    assert row["in flight"] == "open loop 2000/s"
    assert case_row(html, "tcp", "async", "latency")["limited by"] == ""
    legend = re.search(r'<ul class="note limits-legend" id="limits-legend">(.*?)</ul>', html,
                       flags=re.S).group(1)
    assert "† sender behind" in legend and "‡" not in legend
    # the open loop is not ranked: listed once under the round-trip table, marked
    _head, table = question(md)
    assert "`udp` async" not in table
    assert "†" not in "".join(table["`tcp` async"].values())
    assert ("`udp` async at 64 B, 4 KiB (open loop 2000/s: latency from the intended send "
            "times) †") in paragraph(md)
    assert "† sender behind: in the open loop the sender fell behind its schedule" in md
    udp = [r for r in rows if r["mechanism"] == "udp" and r["mode"] == "async"
           and r["pattern"] == "latency"]
    assert udp and all(r["limited_by"] == "sender_behind" and r["sender_behind"] == "true"
                       for r in udp)


def test_flow_stall_and_full_buffer_are_marked(tmp_path):
    doc = set_stream(v2(), "zmq-tcp", flow_stall=0.2, channel_full=0.0)
    doc = set_stream(doc, "udp", flow_stall=0.0, channel_full=0.8)
    doc = set_stream(doc, "tcp", flow_stall=0.04, channel_full=0.3)  # under both limits
    html, md, rows = report(tmp_path, doc)
    pairs = pair_rows(html)
    assert pairs[("zmq-tcp", "throughput", "64 B")][9] == (
        "async: limited by the harness's flow control (20% of the span)")
    assert pairs[("udp", "throughput", "64 B")][9] == (
        "async: the mechanism's buffer was full most of the time (80% of the span)")
    assert pairs[("tcp", "throughput", "64 B")][9] == ""
    row = case_row(html, "zmq-tcp", "async", "throughput")
    assert row["throughput"].endswith(" ‡")
    assert row["limited by"] == "‡ harness flow control (20% of the span)"
    row = case_row(html, "udp", "async", "throughput")
    assert row["limited by"] == "mechanism's buffer full (80% of the span)"
    assert "‡" not in row["throughput"]
    assert case_row(html, "tcp", "async", "throughput")["limited by"] == ""
    legend = re.search(r'id="limits-legend">(.*?)</ul>', html, flags=re.S).group(1)
    assert "‡ limited by the harness&#x27;s flow control" in legend
    assert "‡ harness-limited" in figure_svg(html, "modes")
    _head, table = question(md, THROUGHPUT)
    assert table["`zmq-tcp` async"]["64 B"].endswith("‡")
    assert "‡" not in table["`tcp` async"]["64 B"] and "‡" not in table["`udp` async"]["64 B"]
    assert "‡ limited by the harness's flow control" in md
    summary = md_pairs(md)
    assert summary[("`zmq-tcp`", "throughput")]["note"] == (
        "async: harness flow control 20% at 64 B, 20% at 4 KiB")
    assert summary[("`udp`", "throughput")]["note"] == (
        "async: buffer full 80% at 64 B, 80% at 4 KiB")
    assert summary[("`tcp`", "throughput")]["note"] == "–"
    assert "Buffer full: the mechanism's buffer was full most of the time" in md
    limited = {(r["mechanism"], r["message_size"]): r["limited_by"] for r in rows
               if r["mode"] == "async" and r["pattern"] == "throughput"}
    assert limited[("zmq-tcp", "64")] == "harness_flow_control"
    assert limited[("udp", "64")] == "mechanism_buffer_full"
    assert limited[("tcp", "64")] == ""


# --- in flight: the window and rate of every async figure ----------------------------

def test_tables_state_window_and_rate(tmp_path):
    doc = closed_loop(v2(), 16, mechanism="zmq-tcp")
    doc = open_loop_v2(doc, 2000, mechanism="udp")
    html, md, rows = report(tmp_path, doc)
    assert case_row(html, "tcp", "async", "latency")["in flight"] == "1"
    assert case_row(html, "zmq-tcp", "async", "latency")["in flight"] == "16 (queueing)"
    assert case_row(html, "udp", "async", "latency")["in flight"] == "open loop 2000/s"
    assert case_row(html, "tcp", "async", "throughput")["in flight"] == "limit 32 msgs"
    assert case_row(html, "tcp", "sync", "latency")["in flight"] == ""
    # the round-trip table ranks one message at a time (async: window 1) and
    # names the others once with how they kept messages in flight
    _head, table = question(md)
    assert {"`tcp` async", "`tcp` sync"} <= set(table)
    assert "`zmq-tcp` async" not in table and "`udp` async" not in table
    text = paragraph(md)
    assert "one message at a time (async: a closed loop at window 1)" in text
    assert "`zmq-tcp` async at 64 B, 4 KiB (window 16: includes queueing)" in text
    assert "`udp` async at 64 B, 4 KiB (open loop 2000/s: latency from the intended" in text
    assert md_pairs(md)[("`tcp`", "throughput")]["async in flight"] == "limit 32 msgs"
    flight = {(r["mechanism"], r["mode"], r["pattern"], r["message_size"]): r["in_flight"]
              for r in rows}
    assert flight[("zmq-tcp", "async", "latency", "64")] == "16 (queueing)"
    assert flight[("udp", "async", "latency", "4096")] == "open loop 2000/s"
    assert flight[("tcp", "sync", "latency", "64")] == ""


def test_loops_explained_in_report_and_summary(tmp_path):
    html, md, _rows = report(tmp_path, open_loop_v2(v2(), 2000, mechanism="udp"))
    text = html.replace("&#x27;", "'")
    for sentence in (CLOSED_LOOP, OPEN_LOOP):
        assert sentence in text and sentence in md
    assert "with more in flight it includes queueing" in md
    assert "the sender's own lateness is reported separately" in md
    # only where async latency is shown
    sync_only = copy.deepcopy(v2())
    sync_only["benchmarks"] = [e for e in sync_only["benchmarks"] if e["mode"] == "sync"]
    sync_only["ipcbench"]["configuration"]["modes"] = ["sync"]
    html, md, _rows = report(tmp_path, sync_only, "sync.json")
    assert CLOSED_LOOP not in html.replace("&#x27;", "'")
    assert CLOSED_LOOP not in md and "in flight" not in md


def test_csv_has_the_new_columns(tmp_path):
    doc = set_stream(open_loop_v2(set_wait(v2()), 2000, mechanism="udp", sender_behind=True),
                     "zmq-tcp", flow_stall=0.2)
    for e in entries(doc, "sync", "latency"):
        if e["mechanism"] == "udp":
            e["late"] = 3
    _html, _md, rows = report(tmp_path, doc)
    header = list(rows[0])
    for name in ("wait", "window", "rate", "in_flight_limit_messages", "flow_stall_fraction",
                 "channel_full_fraction", "lateness_p99_ns", "late", "includes_queueing",
                 "sender_behind", "in_flight_limit_source", "in_flight", "limited_by"):
        assert name in header, name
    assert header[-2:] == ["across_hosts", "remote_address"]
    by = {(r["mechanism"], r["mode"], r["pattern"], r["message_size"]): r for r in rows}
    tcp = by[("tcp", "async", "latency", "64")]
    assert (tcp["wait"], tcp["window"], tcp["includes_queueing"], tcp["rate"]) == (
        "spin", "1", "false", "")
    udp = by[("udp", "async", "latency", "64")]
    assert udp["window"] == "" and udp["rate"] == "2000" and float(udp["lateness_p99_ns"]) > 0
    zmq = by[("zmq-tcp", "async", "throughput", "64")]
    assert zmq["in_flight_limit_messages"] == "32" and float(zmq["flow_stall_fraction"]) == 0.2
    assert zmq["in_flight_limit_source"] == "harness" and zmq["channel_full_fraction"] == "0.0"
    assert by[("udp", "sync", "latency", "64")]["late"] == "3"
    assert by[("tcp", "sync", "latency", "64")]["wait"] == "block"


def test_copies_column_says_which_cases_moved_no_bytes(tmp_path):
    doc = v2()
    for e in doc["benchmarks"]:
        e["copies"] = 0 if e["mechanism"] == "udp" else 2
    html, _md, rows = report(tmp_path, doc)
    head, _ = case_table(html)
    assert "copies" in head
    assert case_row(html, "udp", "sync", "throughput")["copies"] == "0"
    assert case_row(html, "tcp", "async", "latency")["copies"] == "2"
    # the loan API's cell says what its bytes per second mean
    assert re.search(r'<td title="a loan API[^"]*handed over, not moved" class="num"'
                     r' data-v="0">0</td>', html)
    by = {(r["mechanism"], r["mode"], r["pattern"], r["message_size"]): r for r in rows}
    assert by[("udp", "async", "throughput", "64")]["copies"] == "0"
    assert by[("zmq-tcp", "sync", "latency", "64")]["copies"] == "2"
    # a file that does not say has no such column, and empty CSV cells
    (tmp_path / "v1").mkdir()
    html, _md, rows = report(tmp_path / "v1", load(HOSTCROSSING))
    assert "copies" not in case_table(html)[0]
    assert {r["copies"] for r in rows} == {""}


# --- version 1 ---------------------------------------------------------------------

def test_version_1_file_still_renders(tmp_path):
    html, md, rows = report(tmp_path, load(HOSTCROSSING))
    # version 1's async latency ran 16 in flight (the row's window): queueing
    assert case_row(html, "tcp", "async", "latency")["in flight"] == "16 (queueing)"
    assert case_row(html, "tcp", "async", "throughput")["in flight"] == "ack window 16"
    assert left_out_note(html).startswith("6 sync vs async latency pair(s) left out")
    assert ("tcp", "throughput", "64 B") in pair_rows(html)
    assert "wait" not in case_table(html)[0] and "limited by" not in case_table(html)[0]
    assert {r["wait"] for r in rows} == {""} and {r["limited_by"] for r in rows} == {""}
    assert "`tcp` async at 64 B, 4 KiB (window 16: includes queueing)" in paragraph(md)
    assert md_pairs(md)[("`tcp`", "throughput")]["async in flight"] == "ack window 16"


@pytest.mark.parametrize("window", [1, 16])
def test_version_1_row_without_a_window_reads_the_configuration(tmp_path, window):
    """A version-1 row that names no window (null) ran the configuration's."""
    doc = copy.deepcopy(load(HOSTCROSSING))
    doc["ipcbench"]["configuration"]["window"] = window
    for e in entries(doc, "async", "latency"):
        e["window"] = None
    html, md, rows = report(tmp_path, doc)
    expected = "1" if window == 1 else "16 (queueing)"
    assert case_row(html, "tcp", "async", "latency")["in flight"] == expected
    assert (("tcp", "p50 latency", "64 B") in pair_rows(html)) == (window == 1)
    assert all(r["status"] == "ok" for r in rows)
    assert ("`tcp` async" in question(md)[1]) == (window == 1)
    assert ("`tcp` async at 64 B, 4 KiB (window 16: includes queueing)" in paragraph(md)) == (
        window == 16)
