"""What a run leaves on the host besides IPC objects (those are
scripts/leftovers' business): a tracefs that ipcbench mounted to count
system calls is unmounted again, and the counts are still there."""
import json
import os
import shutil
import subprocess

import pytest

BINARY = os.environ["IPCBENCH_BINARY"]


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("unshare") is None,
                    reason="needs root and unshare(1) for a private mount namespace")
def test_a_tracefs_mounted_for_counting_is_unmounted(tmp_path):
    out = tmp_path / "r.json"
    # In a mount namespace of its own, with no tracefs anywhere: ipcbench
    # must mount one to read the tracepoint's id, and must not leave it.
    script = f"""
set -e
while mountpoint -q /sys/kernel/tracing; do umount /sys/kernel/tracing; done
if mountpoint -q /sys/kernel/debug; then umount -l /sys/kernel/debug; fi
test ! -e /sys/kernel/tracing/events/raw_syscalls/sys_enter/id
{BINARY} run --mechanisms pipe --modes sync --patterns latency --sizes 64 \
    --min-time 0.05 --no-calibration --out {out} >/dev/null
if mountpoint -q /sys/kernel/tracing; then echo "tracefs left mounted"; exit 3; fi
"""
    r = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    rows = [b for b in json.loads(out.read_text())["benchmarks"]
            if b.get("mechanism") == "pipe" and "runner_syscalls_per_msg" in b]
    assert rows, "no syscall counts: the tracepoint was not found"
    assert all(b["runner_syscalls_per_msg"] > 0 for b in rows)
