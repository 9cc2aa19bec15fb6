"""The HTML report: rendered from a real run, every plot drawn, self-contained."""

import re

import pytest

from ipcbench_report import units
from reportutil import (DATA, add_calibration, doctor, drawn_data_groups, figure_svg, load,
                        panel_points, run_script, save, svgs)

MAIN_FIGURES = ("fig-latency", "fig-throughput", "fig-distribution", "fig-cpu")


def render(tmp_path, *files, extra=()):
    out = tmp_path / "out"
    proc = run_script("report", *files, "-o", out, *extra)
    assert proc.returncode == 0, proc.stderr
    return out, (out / "report.html").read_text(encoding="utf-8")


def assert_every_plot_drawn(html):
    plots = svgs(html)
    assert plots, "no inline SVG"
    for i, svg in enumerate(plots):
        assert drawn_data_groups(svg) >= 1, f"SVG #{i} draws no data"


def assert_self_contained(html):
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//)""", html, flags=re.I)
    assert "<link" not in html.lower()
    assert not re.search(r"url\(\s*['\"]?https?:", html, flags=re.I)
    assert "@import" not in html


def test_real_run_report(tmp_path, real_result):
    out, html = render(tmp_path, real_result)
    for fig in MAIN_FIGURES:
        assert f'id="{fig}"' in html, fig
    assert_every_plot_drawn(html)
    assert_self_contained(html)
    run = load(real_result)
    host = run["ipcbench"]["host"]
    for text in (host["hostname"], host["kernel"], run["ipcbench"]["suite_version"],
                 run["ipcbench"]["git_revision"], "Run context"):
        assert text in html
    for mech in ("pipe", "uds-stream", "tcp"):
        assert mech in html
    # one table row per case, except those flagged as measurement errors
    cases = {(e["mechanism"], e["mode"], e["pattern"], e["message_size"], e["placement"])
             for e in run["benchmarks"] if "measurement_error" not in e}
    flagged = {f["name"] for f in run["ipcbench"].get("flagged", [])}
    cases -= {(e["mechanism"], e["mode"], e["pattern"], e["message_size"], e["placement"])
              for e in run["benchmarks"] if e["run_name"] in flagged}
    rows = re.findall(r"<tr(?: class=\"unstable\")?><td",
                      html.split('id="cases-table"')[1].split("</table>")[0])
    assert len(rows) == len(cases)
    assert (out / "summary.md").is_file() and (out / "cases.csv").is_file()


def test_plot_axes_carry_units(tmp_path):
    _out, html = render(tmp_path, DATA / "all-mechanisms.json")
    latency = re.search(r'id="fig-latency".*?</figure>', html, flags=re.S).group(0)
    assert "µs" in latency and "KiB" in latency
    tput = re.search(r'id="fig-throughput".*?</figure>', html, flags=re.S).group(0)
    assert "B/s" in tput
    dist = re.search(r'id="fig-distribution".*?</figure>', html, flags=re.S).group(0)
    for label in ("50%", "90%", "99%", "99.9%"):
        assert f">{label}<" in dist


def test_notes_when_no_async_and_no_calibration(tmp_path):
    _out, html = render(tmp_path, DATA / "all-mechanisms.json")
    assert "Only the sync mode was measured" in html
    assert "no calibration data" in html
    assert 'id="fig-floor"' not in html and 'id="fig-modes"' not in html


def test_skipped_and_failed_listed_with_reasons(tmp_path):
    _out, html = render(tmp_path, DATA / "all-mechanisms.json", DATA / "interrupted.json",
                        extra=["--allow-incomplete"])
    problems = html.split('id="problems-table"')[1]
    assert "exceeds posix-mq" in problems and "skipped" in problems
    assert "interrupted by a signal" in problems and "failed" in problems


def test_multi_file_report_labelled_by_host(tmp_path):
    doc = load(DATA / "all-mechanisms.json")
    other = doctor(doc, 2.0)
    other["ipcbench"]["host"]["hostname"] = "laptop-b"
    b = save(other, tmp_path / "b.json")
    _out, html = render(tmp_path, DATA / "all-mechanisms.json", b)
    host = doc["ipcbench"]["host"]["hostname"]
    assert 'id="fig-hosts"' in html
    assert f"<h3>{host}</h3>" in html and "<h3>laptop-b</h3>" in html
    assert html.count(">laptop-b<") >= 3  # context, panel titles, table rows
    assert_every_plot_drawn(html)


def test_multi_file_same_host_adds_file_name(tmp_path):
    a = save(load(DATA / "all-mechanisms.json"), tmp_path / "monday.json")
    b = save(doctor(load(DATA / "all-mechanisms.json")), tmp_path / "tuesday.json")
    _out, html = render(tmp_path, a, b)
    assert "· monday.json" in html and "· tuesday.json" in html


def test_calibration_floor_plot_and_ratio_column(tmp_path):
    doc = add_calibration(load(DATA / "all-mechanisms.json"))
    e = next(e for e in doc["benchmarks"] if e["mechanism"] == "tcp")
    e.update(floor="futex_rtt", floor_value=41300.0, floor_ratio=123.0)
    _out, html = render(tmp_path, save(doc, tmp_path / "cal.json"))
    assert 'id="fig-floor-latency-cross-cpu"' in html and "no calibration data" not in html
    floor_svg = figure_svg(html, "floor-latency-cross-cpu")
    assert "data-floor-ratio-latency-" in floor_svg and drawn_data_groups(floor_svg) >= 1
    # The tcp case sits at its own ratio, and hovering it names its floor.
    name = f"tcp ({e['mode']}), {units.size(e['message_size'])}"
    tcp = [p for p in panel_points(html, "floor-latency-cross-cpu")
           if p[1] == "tcp" and p[4].startswith(name)]
    assert tcp and "123× the floor (futex wake-up round trip: 41.3 µs)" in tcp[0][4]
    assert "× floor" in html and 'data-v="123.0"' in html
    assert_every_plot_drawn(html)


def test_floor_ratio_from_calibration_when_cases_lack_it(tmp_path):
    """A file with calibration but no per-case floor fields: the report
    computes p50 over the payload round trip of the case's placement."""
    doc = add_calibration(load(DATA / "all-mechanisms.json"))
    for e in doc["benchmarks"]:
        for k in ("floor", "floor_value", "floor_source", "floor_ratio", "floor_note"):
            e.pop(k, None)
    _out, html = render(tmp_path, save(doc, tmp_path / "cal.json"))
    points = panel_points(html, "floor-latency-cross-cpu")
    assert any(p[1] == "pipe" and "the floor (payload round trip:" in p[4] for p in points)
    assert 'id="fig-floor-throughput-' not in html  # no bandwidth floor is guessed
    assert "× floor" in html


def test_modes_side_by_side_when_two_modes(tmp_path):
    doc = load(DATA / "reps5.json")
    extra = []
    for e in doc["benchmarks"]:
        if e["mechanism"] == "pipe":
            a = dict(e, mode="async", name=e["name"].replace("/sync/", "/async/"),
                     run_name=e["run_name"].replace("/sync/", "/async/"))
            # An async entry carries its loop parameters and, for latency,
            # the one-way distribution (the schema requires them).
            a.update(window=16, rate=None)
            if e["pattern"] == "latency" and "p50_ns" in e:
                a["rate_achieved"] = e.get("items_per_second", 0)
                for k in ("min", "p50", "p90", "p99", "p999", "max"):
                    a[f"oneway_{k}_ns"] = e[f"{k}_ns"] // 2
                a["oneway_samples"] = e.get("samples", 0)
                if "histogram" in e:
                    a["oneway_histogram"] = [dict(h, value_ns=h["value_ns"] // 2)
                                             for h in e["histogram"]]
            extra.append(a)
    doc["benchmarks"] += extra
    doc["ipcbench"]["configuration"]["modes"] = ["sync", "async"]
    _out, html = render(tmp_path, save(doc, tmp_path / "modes.json"))
    assert 'id="fig-modes"' in html
    svg = svgs(re.search(r'id="fig-modes".*?</figure>', html, flags=re.S).group(0))[0]
    assert drawn_data_groups(svg) >= 2 and "async" in svg


def test_size_option_chooses_distribution_size(tmp_path):
    _out, html = render(tmp_path, DATA / "all-mechanisms.json", extra=["--size", "1KiB"])
    assert "Latency distribution at 1 KiB" in html


@pytest.mark.parametrize("name", ["all-mechanisms.json", "reps5.json"])
def test_golden_reports_render(tmp_path, name):
    _out, html = render(tmp_path, DATA / name)
    assert_every_plot_drawn(html)
    assert_self_contained(html)
    ids = re.findall(r'\bid="([^"]+)"', html)
    assert len(set(ids)) == len(ids), "duplicate element ids"
