"""merge (the CI gate's pooling), the shell entries and the workflow."""

import os
import subprocess

import pytest

from reportutil import DATA, ROOT, SCRIPTS, doctor, load, run_script, run_subprocess, save

from ipcbench_report import cli, model


def test_merge_pools_repetitions(tmp_path):
    a = DATA / "reps5.json"
    b = save(doctor(load(a), 1.1), tmp_path / "b.json")
    out = tmp_path / "merged.json"
    assert cli.main(["merge", "-o", str(out), str(a), str(b)]) == 0
    run = model.load(out)
    case = run.cases[model.CaseKey("pipe", "sync", "latency", 64, "cross-cpu")]
    assert case.repetitions == 10 and not case.aggregates
    assert sorted(e["repetition_index"] for e in case.iterations) == list(range(10))
    assert len(load(out)["ipcbench"]["merged_from"]) == 2


def test_merge_refuses_other_hosts(tmp_path, capsys):
    doc = load(DATA / "reps5.json")
    doc["ipcbench"]["host"]["hostname"] = "elsewhere"
    other = save(doc, tmp_path / "o.json")
    assert cli.main(["merge", "-o", str(tmp_path / "m.json"), str(DATA / "reps5.json"),
                     str(other)]) == 2
    assert "different host" in capsys.readouterr().err


@pytest.mark.parametrize("name", ["report", "compare", "ci-gate"])
def test_scripts_are_valid_bash(name):
    assert (SCRIPTS / name).stat().st_mode & 0o111, f"scripts/{name} is not executable"
    subprocess.run(["bash", "-n", str(SCRIPTS / name)], check=True)


def test_ci_gate_usage_and_bad_ref():
    proc = run_script("ci-gate")
    assert proc.returncode == 2 and "Usage: scripts/ci-gate BASE_REF" in proc.stderr
    proc = run_script("ci-gate", "no-such-ref-xyz", "--", "--mechanisms", "pipe")
    assert proc.returncode == 2 and "not a revision" in proc.stderr


def _fake_ipcbench(path, result=None, exit_status=0):
    """A stand-in for a built ipcbench: writes `result` to the --out it is
    given (the gate's run arguments reach it) or exits with exit_status."""
    body = f"sys.exit({exit_status})" if result is None else \
        f"shutil.copy({str(result)!r}, sys.argv[sys.argv.index('--out') + 1])"
    path.write_text(f"#!/usr/bin/python3\nimport shutil, sys\n"
                    f"assert sys.argv[1] == 'run' and '--repetitions' in sys.argv\n{body}\n")
    path.chmod(0o755)
    return path


def _gate(tmp_path, base, head):
    env = dict(os.environ, IPCBENCH_GATE_DIR=str(tmp_path / "gate"), IPCBENCH_GATE_ROUNDS="2")
    env.pop("GITHUB_STEP_SUMMARY", None)
    return subprocess.run([str(SCRIPTS / "ci-gate"), "--binaries", str(base), str(head)],
                          capture_output=True, text=True, timeout=120, cwd=ROOT, env=env)


def test_ci_gate_exits_0_when_head_matches_base(tmp_path):
    same = DATA / "reps5.json"
    proc = _gate(tmp_path, _fake_ipcbench(tmp_path / "base", same),
                 _fake_ipcbench(tmp_path / "head", same))
    assert proc.returncode == 0, proc.stderr
    assert "Result: no regression" in proc.stdout
    rounds = [line for line in proc.stderr.splitlines() if "done (exit" in line]
    assert [r.split(": ")[2] for r in rounds] == ["base done (exit 0)", "head done (exit 0)"] * 2
    for out in ("base.json", "head.json", "compare.md", "compare.html"):
        assert (tmp_path / "gate" / "out" / out).is_file()


def test_ci_gate_exits_1_when_head_is_slower(tmp_path):
    slower = save(doctor(load(DATA / "reps5.json"), 1.3), tmp_path / "slower.json")
    proc = _gate(tmp_path, _fake_ipcbench(tmp_path / "base", DATA / "reps5.json"),
                 _fake_ipcbench(tmp_path / "head", slower))
    assert proc.returncode == 1, proc.stderr
    assert "REGRESSION" in proc.stdout


def test_ci_gate_exits_3_when_a_run_fails(tmp_path):
    proc = _gate(tmp_path, _fake_ipcbench(tmp_path / "base", DATA / "reps5.json"),
                 _fake_ipcbench(tmp_path / "head", exit_status=5))
    assert proc.returncode == 3
    assert "round 1: head run exited with 5" in proc.stderr


def test_ci_gate_refuses_binaries_that_are_not_executables(tmp_path):
    proc = _gate(tmp_path, tmp_path / "missing", tmp_path / "missing")
    assert proc.returncode == 2 and "not an executable file" in proc.stderr


def test_report_help_names_both_commands():
    proc = run_subprocess("report", "--help")
    assert proc.returncode == 0 and "--allow-incomplete" in proc.stdout
    proc = run_subprocess("compare", "--help")
    assert proc.returncode == 0 and "--cross-host" in proc.stdout and "--threshold" in proc.stdout


def test_workflow_only_calls_scripts():
    text = (ROOT / ".github" / "workflows" / "bench.yml").read_text()
    yaml = pytest.importorskip("yaml", reason="python3-yaml is needed to parse the workflow")
    flow = yaml.safe_load(text)
    steps = [s for job in flow["jobs"].values() for s in job["steps"]]
    runs = "\n".join(s.get("run", "") for s in steps)
    for needed in ("scripts/bench", "scripts/report", "scripts/ci-gate", "GITHUB_STEP_SUMMARY"):
        assert needed in runs
    assert any("upload-artifact" in s.get("uses", "") for s in steps)
