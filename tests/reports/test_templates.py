"""The pages are Jinja2 templates with autoescape and StrictUndefined:
whatever a result file holds (mechanism and host names, skip and error
messages, calibration notes, the sanity gate's reasons) reaches the page as
text, never as markup; a field a template names that the data lacks fails
the render instead of leaving a hole in the page."""

import copy

import jinja2
import pytest

from reportutil import (DATA, REPORTS, add_calibration, doctor, flag, html_table, load,
                        run_script, save)

from ipcbench_report import html, model

HOSTILE = "<script>alert(1)</script>"
ESCAPED = "&lt;script&gt;alert(1)&lt;/script&gt;"
MECH = f"pipe{HOSTILE}"


def hostile_doc():
    """A small run (pipe and tcp, plus a skipped case) whose mechanism
    name, host name, skip message, calibration note and sanity-gate reason
    all carry a script tag."""
    doc = load(DATA / "all-mechanisms.json")
    doc["benchmarks"] = [e for e in doc["benchmarks"]
                         if e["mechanism"] in ("pipe", "tcp") or e.get("skipped")][:40]
    skipped = [e for e in doc["benchmarks"] if e.get("skipped")]
    assert skipped, "the seed has no skipped case"
    skipped[0]["skip_message"] = f"too big {HOSTILE}"
    for e in doc["benchmarks"]:
        if e["mechanism"] == "pipe":
            e["mechanism"] = MECH
    cfg = doc["ipcbench"]["configuration"]
    cfg["mechanisms"] = sorted({e["mechanism"] for e in doc["benchmarks"]})
    doc["ipcbench"]["host"]["hostname"] = f"vm{HOSTILE}"
    doc = add_calibration(doc)
    for figs in doc["ipcbench"]["calibration"]["placements"].values():
        figs["notes"] = [f"note {HOSTILE}"]
    return flag(doc, "tcp", "latency", 64, f"below the floor {HOSTILE}")


def assert_escaped(page):
    """No script tag from the data: the only <script> is the sort script."""
    assert "<script>alert" not in page
    assert page.count("<script") == 1, "a <script> besides the sort script"
    assert ESCAPED in page


def report(tmp_path, *files, extra=()):
    out = tmp_path / "out"
    proc = run_script("report", *files, "-o", out, *extra)
    assert proc.returncode == 0, proc.stderr
    return (out / "report.html").read_text(encoding="utf-8")


def test_report_escapes_what_the_result_file_holds(tmp_path):
    page = report(tmp_path, save(hostile_doc(), tmp_path / "hostile.json"),
                  extra=("--title", f"title {HOSTILE}"))
    assert_escaped(page)
    assert f"<title>title {ESCAPED}</title>" in page
    assert f"<h1>title {ESCAPED}</h1>" in page
    # Each as the text of its cell (html_table decodes the entities), so it
    # was escaped once, not dropped and not escaped twice.
    assert MECH in {row[0] for row in html_table(page, "cases-table")}
    assert f"too big {HOSTILE}" in {row[-1] for row in html_table(page, "problems-table")}
    assert [f"below the floor {HOSTILE}"] == [row[2] for row in html_table(page,
                                                                          "flagged-table")]
    assert f"<tr><th>host</th><td>vm{ESCAPED}</td></tr>" in page
    assert f"<li>note {ESCAPED}</li>" in page
    assert "&amp;lt;" not in page, "escaped twice"


def test_failed_case_error_is_escaped(tmp_path):
    doc = load(DATA / "interrupted.json")
    for e in doc["benchmarks"]:
        if e.get("error_occurred"):
            e["error_message"] = f"peer died {HOSTILE}"
    for f in doc["ipcbench"]["failed"]:
        f["error"] = f"peer died {HOSTILE}"
    page = report(tmp_path, save(doc, tmp_path / "interrupted.json"),
                  extra=("--allow-incomplete",))
    assert_escaped(page)
    reasons = {row[-1] for row in html_table(page, "problems-table")}
    assert f"peer died {HOSTILE}" in reasons


def test_compare_escapes_what_the_result_files_hold(tmp_path):
    base = hostile_doc()
    new = copy.deepcopy(base)
    new["benchmarks"] = [e for e in doctor(new, 1.5)["benchmarks"]
                         if not (e["mechanism"] == "tcp" and e.get("skipped"))]
    out = tmp_path / "cmp"
    proc = run_script("compare", save(base, tmp_path / "base.json"),
                      save(new, tmp_path / "new.json"), "-o", out)
    assert proc.returncode in (0, 1), proc.stderr
    page = (out / "compare.html").read_text(encoding="utf-8")
    assert_escaped(page)
    assert any(row[0].startswith(MECH) for row in html_table(page, "changes-table"))
    assert '<li class="flagged"><code>' in page and f"below the floor {ESCAPED}" in page


def test_macros_escape_and_only_plots_are_markup():
    macros = html.template("macros.html").module
    assert str(macros.note(HOSTILE)) == f'<p class="note">{ESCAPED}</p>'
    assert html.note(HOSTILE) == f'<p class="note">{ESCAPED}</p>'
    assert ESCAPED in html.kv_table([("host", HOSTILE)])
    # The spelling the pages have always had (and readers match on).
    assert str(macros.note("the harness's \"budget\"")) == \
        '<p class="note">the harness&#x27;s &quot;budget&quot;</p>'
    # A figure's svg is trusted markup (plots.py); its caption is not.
    fig = {"id": "x", "svg": html.Markup("<svg></svg>"), "caption": HOSTILE}
    assert str(macros.figure(fig)) == (f'<figure class="plot" id="fig-x"><svg></svg>'
                                       f"<figcaption>{ESCAPED}</figcaption></figure>")
    fig["svg"] = HOSTILE
    assert "<script>" not in str(macros.figure(fig))


def test_environment_autoescapes_and_is_strict():
    assert html.ENV.undefined is jinja2.StrictUndefined
    for name in ("report.html", "compare.html", "macros.html", "base.html",
                 "report_sections.html", "compare_sections.html"):
        assert html.ENV.autoescape(name) is True, name
    with pytest.raises(jinja2.UndefinedError):
        html.ENV.from_string("<p>{{ run.missing_field }}</p>").render(run={})


def test_a_field_missing_from_the_data_fails_the_report(monkeypatch):
    """A template names a field the data lacks: the render raises, it does
    not write an empty cell."""
    run = model.load(DATA / "all-mechanisms.json")
    run.label = "all"
    assert "All cases" in html.render_report([run])
    real = html.context_data

    def without_pairs(run, heading):
        data = real(run, heading)
        del data["pairs"]
        return data
    monkeypatch.setattr(html, "context_data", without_pairs)
    with pytest.raises(jinja2.UndefinedError, match="pairs"):
        html.render_report([run])
    with pytest.raises(jinja2.UndefinedError):
        html.template("report.html").render(title="t", lead="l")


def test_templates_are_package_data_in_one_place():
    package = REPORTS / "ipcbench_report" / "templates"
    assert html.TEMPLATES == package
    for name in ("base.html", "report.html", "compare.html", "macros.html",
                 "report_sections.html", "compare_sections.html", "style.css", "sortable.js"):
        assert (package / name).is_file(), name
    assert not (REPORTS / "templates").exists(), "a second copy of the templates"


def test_style_and_script_are_inlined_verbatim():
    run = model.load(DATA / "interrupted.json", allow_incomplete=True)
    run.label = "interrupted"
    page = html.render_report([run])
    assert f"<style>\n{html.asset('style.css')}\n</style>" in page
    assert f"<script>\n{html.asset('sortable.js')}\n{html.asset('plots.js')}\n</script>" in page
