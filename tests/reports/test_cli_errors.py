"""Bad inputs: exit status 2 and exactly one line on stderr, for both entries
(the real scripts, each in a process of its own, as a user runs them)."""

import pytest

from reportutil import DATA, load, run_subprocess, save


def _bad_files(tmp_path):
    doc = load(DATA / "all-mechanisms.json")
    newer = dict(doc, ipcbench=dict(doc["ipcbench"], schema_version=3))  # this tool reads 1, 2
    wrong = load(DATA / "all-mechanisms.json")
    wrong["benchmarks"][0]["placement"] = "on-the-moon"
    (tmp_path / "notjson.json").write_text("this is not JSON\n")
    (tmp_path / "gbench.json").write_text('{"context": {}, "benchmarks": []}')
    return {
        "not JSON": (tmp_path / "notjson.json", "not valid JSON"),
        "not a suite result": (tmp_path / "gbench.json", "not an ipcbench result file"),
        "wrong schema": (save(wrong, tmp_path / "wrong.json"), "does not match the result schema"),
        "newer schema_version": (save(newer, tmp_path / "newer.json"),
                                 "newer than this report tool"),
        "incomplete": (DATA / "interrupted.json", "incomplete run"),
        "missing": (tmp_path / "absent.json", "cannot read"),
    }


CASES = ["not JSON", "not a suite result", "wrong schema", "newer schema_version",
         "incomplete", "missing"]


@pytest.mark.parametrize("case", CASES)
def test_report_refuses_with_one_line(tmp_path, case):
    path, expect = _bad_files(tmp_path)[case]
    proc = run_subprocess("report", DATA / "all-mechanisms.json", path, "-o", tmp_path / "out")
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert str(path.name) in lines[0] and expect in lines[0]
    assert not (tmp_path / "out" / "report.html").exists()


@pytest.mark.parametrize("case", CASES)
def test_compare_refuses_with_one_line(tmp_path, case):
    path, expect = _bad_files(tmp_path)[case]
    proc = run_subprocess("compare", DATA / "all-mechanisms.json", path)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and expect in lines[0], proc.stderr


def test_incomplete_accepted_with_flag(tmp_path):
    proc = run_subprocess("report", DATA / "interrupted.json", "--allow-incomplete",
                      "-o", tmp_path / "out")
    assert proc.returncode == 0, proc.stderr
    html = (tmp_path / "out" / "report.html").read_text()
    assert "interrupted" in html and "not run: the run was interrupted" in html
