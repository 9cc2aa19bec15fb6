"""The report's overview (issue 20 point 1): the ranking per size for each
question, the heat map, and the plots as small multiples of at most
MAX_SERIES series, each with its legend and hover points."""

import copy
import html as htmllib
import json
import re
import xml.etree.ElementTree as ET

import pytest

from reportutil import (DATA, figure_html, flag, load, panel_points, run_script, save, svgs)

from ipcbench_report import html, model, multiples, ranking

FAMILIES = {"pipe": "pipe", "pipe-splice": "pipe", "fifo": "pipe", "uds-stream": "socket",
            "uds-dgram": "socket", "uds-seqpacket": "socket", "tcp": "socket",
            "udp": "socket", "shm-spin": "shm", "shm-futex": "shm", "shm-eventfd": "shm",
            "memfd": "shm", "cma": "cma", "boost-shm": "shm", "posix-mq": "mq",
            "sysv-mq": "mq", "boost-mq": "mq", "zmq-ipc": "zmq", "zmq-tcp": "zmq"}
# Mechanisms the golden file lacks, made from one it has (name -> source).
CLONES = {"pipe-splice": "pipe", "shm-eventfd": "shm-futex", "memfd": "shm-spin",
          "cma": "uds-stream"}


def _async_latency_fields():
    """What a real async latency row has beyond a sync one (one-way times,
    the achieved rate, the window), from the host-crossing run's tcp."""
    doc = load(DATA / "hostcrossing.json")
    rows = {(e["mode"], e["pattern"]): e for e in doc["benchmarks"]
            if e.get("mechanism") == "tcp" and e["message_size"] == 64}
    a, s = rows[("async", "latency")], rows[("sync", "latency")]
    return {k: v for k, v in a.items() if k not in s}


ASYNC_LATENCY = _async_latency_fields()


def default_like():
    """A doc shaped like the default suite's result: 19 mechanisms with
    their families, sync and async (closed loop, window 1), latency and
    throughput, 64 B to 256 KiB, from the golden all-mechanism file."""
    doc = load(DATA / "all-mechanisms.json")
    rows = [e for e in doc["benchmarks"] if "mechanism" in e]
    for name, source in CLONES.items():
        for e in [e for e in rows if e["mechanism"] == source]:
            c = copy.deepcopy(e)
            c["mechanism"] = name
            c["name"] = c["name"].replace(source, name, 1)
            c["run_name"] = c["name"]
            rows.append(c)
    for e in [e for e in rows if e["message_size"] == 16384]:
        c = copy.deepcopy(e)
        c["message_size"] = 262144
        c["name"] = c["name"].replace("/16384", "/262144")
        c["run_name"] = c["name"]
        rows.append(c)
    for e in list(rows):
        c = copy.deepcopy(e)
        c["mode"] = "async"
        c["name"] = c["name"].replace("/sync/", "/async/")
        c["run_name"] = c["name"]
        if c.get("skipped") or c.get("error_occurred"):
            pass
        elif c["pattern"] == "latency":  # a closed loop at window 1, as the suite writes it
            c.update(ASYNC_LATENCY, window=1, rate_achieved=1e9 / c["p50_ns"])
        else:
            c.update(window=16, rate=None)
        rows.append(c)
    for e in rows:
        e["family"] = FAMILIES[e["mechanism"]]
    doc["benchmarks"] = rows
    cfg = doc["ipcbench"]["configuration"]
    cfg.update(mechanisms=list(FAMILIES), modes=["sync", "async"],
               sizes=[64, 1024, 16384, 262144], window=1)
    return doc


def set_p50(doc, values, size=64, mode="sync"):
    for e in doc["benchmarks"]:
        if (e["pattern"] == "latency" and e["message_size"] == size and e["mode"] == mode
                and e["mechanism"] in values):
            e["p50_ns"] = values[e["mechanism"]]
    return doc


def run_of(doc, tmp_path, name="d.json"):
    run = model.load(save(doc, tmp_path / name))
    return model.assign_labels([run])


# --- ranking ------------------------------------------------------------------

def test_ranking_best_first_with_ratio_to_the_best(tmp_path):
    doc = set_p50(load(DATA / "all-mechanisms.json"),
                  {m: 1e6 for m in FAMILIES})  # everyone slow...
    doc = set_p50(doc, {"shm-spin": 400.0, "tcp": 800.0, "pipe": 4000.0})  # ...but three
    runs = run_of(doc, tmp_path)
    top = ranking.ranked(runs, "latency", 64)[:3]
    assert [e.label for e in top] == ["shm-spin (sync)", "tcp (sync)", "pipe (sync)"]
    assert [ranking.ratio_text(e.ratio) for e in top] == ["best", "×2.00", "×10.0"]
    assert top[0].cpu_ns == runs[0].cases[top[0].case.key].cpu_ns_per_msg()
    # The page shows the same order in the 64 B table, best in bold.
    page = html.render_report(runs)
    table = re.search(r'id="rank-latency">.*?<table.*?</table>', page, flags=re.S).group(0)
    labels = re.findall(r'<td class="label">([^<]*)</td>', table)
    assert labels[:3] == ["shm-spin (sync)", "tcp (sync)", "pipe (sync)"]
    assert '<tr class="best"><td class="num">1</td><td class="label">shm-spin (sync)' in table


def test_throughput_ranks_highest_first(tmp_path):
    doc = load(DATA / "all-mechanisms.json")
    for e in doc["benchmarks"]:
        if e["pattern"] == "throughput" and e["message_size"] == 1024:
            e["bytes_per_second"] = {"udp": 9e9, "pipe": 3e9}.get(e["mechanism"], 1e6)
    top = ranking.ranked(run_of(doc, tmp_path), "throughput", 1024)[:2]
    assert [(e.label, ranking.ratio_text(e.ratio)) for e in top] == [
        ("udp (sync)", "best"), ("pipe (sync)", "×3.00")]


def test_queueing_async_and_flagged_cases_are_not_ranked(tmp_path):
    doc = default_like()
    for e in doc["benchmarks"]:
        if e["mode"] == "async" and e["pattern"] == "latency" and e["mechanism"] == "tcp":
            e.update(window=16, p50_ns=1.0)  # would lead
    doc = flag(doc, "pipe", "latency", 64, "below the cache-line floor")
    runs = run_of(doc, tmp_path)
    labels = [e.label for e in ranking.ranked(runs, "latency", 64)]
    assert "tcp (async)" not in labels and "pipe (sync)" not in labels
    assert "tcp (sync)" in labels and "pipe (async)" in labels
    page = html.render_report(runs)
    overview = page[page.index('<section id="overview">'):page.index('<section id="context">')]
    assert "Not ranked" in overview and "tcp (window 16: includes queueing)" in overview
    assert overview.count("tcp (window 16") == 1  # once, not once per size


def test_heat_map_orders_rows_by_geometric_mean_over_the_sizes_measured(tmp_path):
    doc = load(DATA / "all-mechanisms.json")
    lat = {64: {"pipe": 100.0, "tcp": 200.0, "udp": 50.0},
           1024: {"pipe": 100.0, "tcp": 100.0, "udp": 400.0},
           16384: {"pipe": 100.0, "tcp": 100.0, "udp": 400.0}}
    for size, values in lat.items():
        doc = set_p50(doc, {m: 1e7 for m in FAMILIES}, size)
        doc = set_p50(doc, values, size)
    doc["benchmarks"] = [e for e in doc["benchmarks"] if not (
        e["mechanism"] == "pipe" and e["message_size"] == 16384)]
    sizes, rows = ranking.grid(run_of(doc, tmp_path), "latency")
    assert sizes == [64, 1024, 16384]
    order = [r.label for r in rows]
    # pipe lacks 16 KiB: ratios 2, 1 -> 1.41; tcp: 4, 1, 1 -> 1.59; udp: 1, 4, 4 -> 2.52.
    assert order[:3] == ["pipe (sync)", "tcp (sync)", "udp (sync)"]
    assert 16384 not in rows[0].cells and len(rows[1].cells) == 3
    assert rows[0].score == pytest.approx(2 ** 0.5, rel=1e-9)
    assert rows[1].score == pytest.approx(4 ** (1 / 3), rel=1e-9)


def test_overview_opens_the_report(tmp_path):
    page = html.render_report(run_of(default_like(), tmp_path))
    assert page.index('<section id="overview">') < page.index('<section id="context">')
    nav = re.search(r'<nav class="toc">(.*?)</nav>', page).group(1)
    assert nav.startswith('<a href="#overview">Overview</a>')
    for pattern in ("latency", "throughput"):
        assert f'id="rank-{pattern}"' in page and f'id="heat-{pattern}"' in page
    # The heat map has every series once, and a cell per size.
    heat = re.search(r'id="heat-latency">(.*?)</table>', page, flags=re.S).group(1)
    assert heat.count("<tr>") == 1 + 2 * len(FAMILIES)
    assert all(row.count("<td") == 5 for row in heat.split("<tr>")[2:])


# --- small multiples -----------------------------------------------------------

def series_per_panel(fig):
    """The distinct data-series of each panel SVG of a figure."""
    return [set(re.findall(r'data-series="([^"]+)"', svg)) for svg in svgs(fig)]


def test_every_plot_carries_at_most_the_series_limit(tmp_path):
    out = tmp_path / "out"
    proc = run_script("report", save(default_like(), tmp_path / "d.json"), "-o", out)
    assert proc.returncode == 0, proc.stderr
    page = (out / "report.html").read_text(encoding="utf-8")
    ids = re.findall(r'<figure class="plot" id="fig-([^"]+)">', page)
    for fig_id in ("latency", "throughput", "distribution", "cpu"):
        assert fig_id in ids
        panels = series_per_panel(figure_html(page, fig_id))
        assert len(panels) >= 2, fig_id
        assert all(1 <= len(p) <= multiples.MAX_SERIES for p in panels), (fig_id, panels)
        legends = re.findall(r'<ul class="legend">(.*?)</ul>', figure_html(page, fig_id),
                             flags=re.S)
        assert [len(re.findall("<button", li)) for li in legends] == [len(p) for p in panels]
    # The figures that are not small multiples are bars of at most two series.
    for fig_id in set(ids) - {"latency", "throughput", "distribution", "cpu"}:
        fig = figure_html(page, fig_id)
        if "data-series=" in fig:
            assert all(len(p) <= multiples.MAX_SERIES for p in series_per_panel(fig))
        else:
            assert fig_id in ("cpu-split", "modes"), fig_id
            bars = set(re.findall(r'id="data-((?:cpu|modes)-[a-z-]+?)-\d+"', fig))
            assert len({b.rsplit("-", 1)[0] if b[-1].isdigit() else b for b in bars}) <= 4
    # Under 2 MB for a suite of the default's shape, self-contained.
    assert len(page.encode()) < 2_000_000
    assert "<script src" not in page and "http://" not in page.split("<svg")[0]


def test_layout_keeps_families_whole_and_splits_what_does_not_fit(tmp_path):
    lay = multiples.layout(run_of(default_like(), tmp_path))
    assert [mechs for _t, mechs in lay.groups] == [
        ["pipe", "pipe-splice", "fifo", "uds-stream", "uds-dgram", "uds-seqpacket", "tcp", "udp"],
        ["shm-spin", "shm-futex", "shm-eventfd", "memfd", "boost-shm", "cma"],
        ["posix-mq", "sysv-mq", "boost-mq", "zmq-ipc", "zmq-tcp"]]
    titles = [t for t, _m in lay.groups]
    assert titles == ["pipe · socket", "shm · cma", "mq · zmq"]
    assert all(len(m) <= multiples.MAX_SERIES for _t, m in lay.groups)
    # Two placements double every family's series: socket (5 mechanisms,
    # 10 series) no longer fits one panel and is split by mechanism.
    doc = default_like()
    more = []
    for e in doc["benchmarks"]:
        c = copy.deepcopy(e)
        c["placement"] = "same-cpu"
        c["name"] = c["name"] + "/same-cpu"
        c["run_name"] = c["name"]
        more.append(c)
    doc["benchmarks"] += more
    lay = multiples.layout(run_of(doc, tmp_path, "two.json"))
    for _title, mechs in lay.groups:
        assert 2 * len(mechs) <= multiples.MAX_SERIES
    groups = [m for _t, m in lay.groups]
    assert ["pipe", "pipe-splice", "fifo"] in groups
    assert sorted(sum(groups, [])) == sorted(FAMILIES)


def test_no_family_recorded_packs_mechanisms_in_registry_order(tmp_path):
    lay = multiples.layout(run_of(load(DATA / "all-mechanisms.json"), tmp_path))
    flat = sum((m for _t, m in lay.groups), [])
    assert all(len(m) <= multiples.MAX_SERIES for _t, m in lay.groups)
    assert flat == model.load(DATA / "all-mechanisms.json").mechanisms()


def test_hover_points_sit_on_the_drawn_markers(tmp_path):
    """Each hover point of the latency plot is where its series' marker is
    drawn in the panel's SVG (same units), and says its values."""
    runs = run_of(default_like(), tmp_path)
    page = html.render_report(runs)
    fig = figure_html(page, "latency")
    checked = 0
    for m in re.finditer(r'<div class="panel" data-points="([^"]*)">(.*?)</ul></div>', fig,
                         flags=re.S):
        points = json.loads(htmllib.unescape(m.group(1)))
        svg = ET.fromstring(svgs(m.group(2))[0])
        markers = {}
        for g in svg.iter():
            sid = g.get("data-series")
            if sid and g.get("id", "").startswith("data-latency-") and "whisker" not in g.get(
                    "id"):
                markers.setdefault(sid, []).extend(
                    (float(u.get("x")), float(u.get("y"))) for u in g.iter()
                    if u.tag.endswith("use"))
        for sid, x, y, text in points:
            assert any(abs(x - mx) < 0.2 and abs(y - my) < 0.2 for mx, my in markers[sid]), \
                (sid, x, y, markers[sid][:4])
            assert re.match(r"[\w-]+ \((sync|async)\), \d+ (B|KiB): p50 .+, p99 .+", text), text
            checked += 1
    assert checked == len(runs[0].case_list("latency")) > 100


def test_points_name_the_values_a_reader_checks(tmp_path):
    doc = set_p50(default_like(), {"tcp": 12345.0})
    runs = run_of(doc, tmp_path)
    page = html.render_report(runs)
    tcp = [p for p in panel_points(page, "latency")
           if p[1] == "tcp" and p[0].endswith("— sync") and ", 64 B:" in p[4]]
    assert len(tcp) == 1 and "p50 12.3 µs" in tcp[0][4]
