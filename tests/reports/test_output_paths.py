"""Every file the report tool writes, for every kind of path (output.py):
FIFOs and character devices are written through, symlinks stay symlinks,
regular files are replaced atomically, '-' is standard output, and paths
that cannot work are refused (exit 2) before anything is loaded or
rendered. Device nodes are made in tmp_path, never the machine's /dev."""

import contextlib
import json
import os
import socket
import stat
import subprocess
import sys
import threading
import time

import pytest

from reportutil import DATA, REPORTS

from ipcbench_report import cli, markdown, merge, model, output

RESULT = DATA / "reps5.json"


def merged_text(*files):
    return merge.dumps(merge.merge(model.load_all(list(files))))


def lines(text):
    return text.strip().splitlines()


def tool(*args, cwd, **kwargs):
    """python -m ipcbench_report ARGS in a process of its own."""
    env = dict(os.environ, PYTHONPATH=str(REPORTS), PYTHONDONTWRITEBYTECODE="1")
    return subprocess.run([sys.executable, "-m", "ipcbench_report", *map(str, args)],
                          capture_output=True, cwd=cwd, env=env, timeout=120, **kwargs)


@contextlib.contextmanager
def fifo_reader(path):
    """A reader on the FIFO at path (open before the tool starts); yields a
    list that holds every byte read once the block ends."""
    rfd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    done, chunks, got = threading.Event(), [], []

    def read():
        while True:
            try:
                chunk = os.read(rfd, 65536)
            except BlockingIOError:  # a writer, no data yet
                chunk = None
            if chunk:
                chunks.append(chunk)
            elif chunk == b"" and done.is_set():  # no writer left and the tool is done
                return
            else:
                time.sleep(0.002)

    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    try:
        yield got
    finally:
        done.set()
        thread.join(timeout=30)
        os.close(rfd)
        got.append(b"".join(chunks))


@pytest.fixture
def no_work(monkeypatch):
    """Fails the test if the tool loads any input (so a refusal is proven to
    come before any work)."""
    def refuse(*args, **kwargs):
        raise AssertionError("the inputs were loaded before the output was checked")
    monkeypatch.setattr(model, "load_all", refuse)


def mknod(path, kind, major, minor):
    try:
        os.mknod(path, kind | 0o666, os.makedev(major, minor))
    except PermissionError as e:
        pytest.skip(f"cannot make device nodes here: {e}")
    return path


def temp_files(*dirs):
    return [p.name for d in dirs for p in d.iterdir() if p.name.endswith(".tmp")]


# --- FIFOs -----------------------------------------------------------------------

def test_fifo_with_reader_gets_every_byte_and_stays_a_fifo(tmp_path, capsys):
    fifo = tmp_path / "merged.json"
    os.mkfifo(fifo)
    with fifo_reader(fifo) as got:
        assert cli.main(["merge", "-o", str(fifo), str(RESULT), str(RESULT)]) == 0
    expected = merged_text(RESULT, RESULT).encode()
    assert len(expected) > 65536  # more than a pipe buffer: the writes really block
    assert got[0] == expected
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    assert temp_files(tmp_path) == []
    assert f"wrote {fifo}" in capsys.readouterr().out


def test_report_writes_through_a_fifo_in_its_directory(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    os.mkfifo(out / "summary.md")
    with fifo_reader(out / "summary.md") as got:
        proc = tool("report", RESULT, "-o", out, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert got[0].decode() == markdown.render_summary(model.load_all([RESULT]))
    assert stat.S_ISFIFO(os.lstat(out / "summary.md").st_mode)
    assert (out / "report.html").is_file() and (out / "cases.csv").is_file()


@pytest.mark.parametrize("command", ["merge", "report", "compare"])
def test_fifo_without_reader_is_refused_before_any_work(tmp_path, capsys, no_work, command):
    out = tmp_path / "out"
    out.mkdir()
    name = {"merge": "merged.json", "report": "summary.md", "compare": "compare.md"}[command]
    fifo = out / name
    os.mkfifo(fifo)
    args = {"merge": ["merge", "-o", str(fifo), str(RESULT)],
            "report": ["report", str(RESULT), "-o", str(out)],
            "compare": ["compare", str(RESULT), str(RESULT), "-o", str(out)]}[command]
    started = time.monotonic()
    assert cli.main(args) == 2
    assert time.monotonic() - started < 10  # refused, not blocked waiting for a reader
    captured = capsys.readouterr()
    err = lines(captured.err)
    assert len(err) == 1 and str(fifo) in err[0] and "FIFO with no reader" in err[0], err
    assert err[0].startswith("ipcbench-report: ")
    assert captured.out == ""
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    assert sorted(p.name for p in out.iterdir()) == [name]


# --- symlinks --------------------------------------------------------------------

def test_symlink_to_regular_file_stays_a_link_and_its_target_is_replaced(tmp_path):
    links, files = tmp_path / "links", tmp_path / "files"
    links.mkdir()
    files.mkdir()
    target = files / "merged.json"
    target.write_text("old content\n")
    os.chmod(target, 0o600)
    old_inode = target.stat().st_ino
    # a chain: links/out.json -> links/hop.json -> ../files/merged.json
    (links / "hop.json").symlink_to(os.path.join("..", "files", "merged.json"))
    (links / "out.json").symlink_to("hop.json")
    assert cli.main(["merge", "-o", str(links / "out.json"), str(RESULT)]) == 0
    assert (links / "out.json").is_symlink() and (links / "hop.json").is_symlink()
    assert os.readlink(links / "out.json") == "hop.json"
    assert target.read_text() == merged_text(RESULT)
    assert target.stat().st_ino != old_inode  # renamed over, not rewritten in place
    assert stat.S_IMODE(target.stat().st_mode) == 0o644
    assert sorted(p.name for p in links.iterdir()) == ["hop.json", "out.json"]
    assert sorted(p.name for p in files.iterdir()) == ["merged.json"]


def test_dangling_symlink_gets_its_target_created(tmp_path):
    (tmp_path / "elsewhere").mkdir()
    link = tmp_path / "out.json"
    link.symlink_to(os.path.join("elsewhere", "new.json"))
    assert cli.main(["merge", "-o", str(link), str(RESULT)]) == 0
    assert link.is_symlink()
    assert (tmp_path / "elsewhere" / "new.json").read_text() == merged_text(RESULT)
    assert temp_files(tmp_path, tmp_path / "elsewhere") == []


def test_symlink_to_a_fifo_writes_through(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    link = tmp_path / "out.json"
    link.symlink_to("pipe")
    with fifo_reader(fifo) as got:
        assert cli.main(["merge", "-o", str(link), str(RESULT)]) == 0
    assert got[0] == merged_text(RESULT).encode()
    assert link.is_symlink() and stat.S_ISFIFO(os.lstat(fifo).st_mode)


# --- regular files ---------------------------------------------------------------

def test_regular_file_is_replaced_atomically(tmp_path):
    path = tmp_path / "merged.json"
    path.write_text("old content\n")
    os.chmod(path, 0o600)
    old_inode = path.stat().st_ino
    assert cli.main(["merge", "-o", str(path), str(RESULT)]) == 0
    assert path.read_text() == merged_text(RESULT)
    assert path.stat().st_ino != old_inode
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert sorted(p.name for p in tmp_path.iterdir()) == ["merged.json"]


def test_failed_write_removes_the_temp_file_and_keeps_the_old_file(tmp_path, monkeypatch,
                                                                  capsys):
    path = tmp_path / "merged.json"
    path.write_text("old content\n")

    def no_space(fd):
        raise OSError(28, os.strerror(28))
    monkeypatch.setattr(output.os, "fsync", no_space)
    assert cli.main(["merge", "-o", str(path), str(RESULT)]) == 1
    err = lines(capsys.readouterr().err)
    assert err == [f"ipcbench-report: cannot write {path}: No space left on device"]
    assert path.read_text() == "old content\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["merged.json"]


def test_report_outputs_are_replaced_atomically(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "report.html").write_text("old")
    inode = (out / "report.html").stat().st_ino
    proc = tool("report", RESULT, "-o", out, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert (out / "report.html").stat().st_ino != inode
    assert (out / "report.html").read_text().lstrip().lower().startswith("<!doctype html")
    assert sorted(p.name for p in out.iterdir()) == ["cases.csv", "report.html", "summary.md"]
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o644 for p in out.iterdir())


# --- character devices (made in tmp_path) -----------------------------------------

def test_null_device_stays_a_character_device(tmp_path):
    null = mknod(tmp_path / "null", stat.S_IFCHR, 1, 3)
    assert cli.main(["merge", "-o", str(null), str(RESULT)]) == 0
    st = os.lstat(null)
    assert stat.S_ISCHR(st.st_mode) and st.st_rdev == os.makedev(1, 3)
    assert temp_files(tmp_path) == []


@pytest.mark.parametrize("command", ["merge", "report"])
def test_full_device_exits_1_with_one_line(tmp_path, capsys, command):
    out = tmp_path / "out"
    out.mkdir()
    full = mknod(out / ("merged.json" if command == "merge" else "cases.csv"), stat.S_IFCHR,
                 1, 7)
    args = (["merge", "-o", str(full), str(RESULT)] if command == "merge"
            else ["report", str(RESULT), "-o", str(out)])
    assert cli.main(args) == 1
    captured = capsys.readouterr()
    err = lines(captured.err)
    assert err == [f"ipcbench-report: cannot write {full}: No space left on device"], err
    assert f"wrote {full}" not in captured.out
    assert stat.S_ISCHR(os.lstat(full).st_mode)
    assert temp_files(out) == []


# --- refused up front --------------------------------------------------------------

def test_block_device_is_refused_before_any_work(tmp_path, capsys, no_work):
    # major 240: reserved for local/experimental use, so no real disk
    node = mknod(tmp_path / "disk", stat.S_IFBLK, 240, 0)
    assert cli.main(["merge", "-o", str(node), str(RESULT)]) == 2
    err = lines(capsys.readouterr().err)
    assert len(err) == 1 and "is a block device" in err[0] and str(node) in err[0]
    assert stat.S_ISBLK(os.lstat(node).st_mode)


def test_socket_is_refused_before_any_work(tmp_path, capsys, no_work):
    path = tmp_path / "sock"
    with socket.socket(socket.AF_UNIX) as s:
        s.bind(str(path))
        assert cli.main(["merge", "-o", str(path), str(RESULT)]) == 2
    err = lines(capsys.readouterr().err)
    assert len(err) == 1 and "is a socket" in err[0] and str(path) in err[0]
    assert stat.S_ISSOCK(os.lstat(path).st_mode)


def test_directory_as_merge_out_is_refused(tmp_path, capsys, no_work):
    (tmp_path / "d").mkdir()
    (tmp_path / "link").symlink_to("d")
    for path in (tmp_path / "d", tmp_path / "link"):
        assert cli.main(["merge", "-o", str(path), str(RESULT)]) == 2
        err = lines(capsys.readouterr().err)
        assert len(err) == 1 and "is a directory" in err[0] and str(path) in err[0], err
    assert list((tmp_path / "d").iterdir()) == [] and (tmp_path / "link").is_symlink()


def test_report_checks_each_output_path_before_rendering(tmp_path, capsys, no_work):
    out = tmp_path / "out"
    (out / "cases.csv").mkdir(parents=True)
    assert cli.main(["report", str(RESULT), "-o", str(out)]) == 2
    err = lines(capsys.readouterr().err)
    assert len(err) == 1 and str(out / "cases.csv") in err[0] and "is a directory" in err[0]
    assert sorted(p.name for p in out.iterdir()) == ["cases.csv"]


def test_report_out_that_is_a_file_is_refused(tmp_path, capsys, no_work):
    (tmp_path / "out").write_text("not a directory")
    assert cli.main(["report", str(RESULT), "-o", str(tmp_path / "out")]) == 2
    err = lines(capsys.readouterr().err)
    assert len(err) == 1 and "not a directory" in err[0]
    assert (tmp_path / "out").read_text() == "not a directory"


def test_bad_input_leaves_no_output_directory_behind(tmp_path, capsys):
    out = tmp_path / "new" / "out"
    assert cli.main(["report", str(tmp_path / "absent.json"), "-o", str(out)]) == 2
    assert "cannot read" in capsys.readouterr().err
    assert not (tmp_path / "new").exists()


def test_merge_still_creates_missing_parents(tmp_path):
    path = tmp_path / "a" / "b" / "merged.json"
    assert cli.main(["merge", "-o", str(path), str(RESULT)]) == 0
    assert path.read_text() == merged_text(RESULT)


@contextlib.contextmanager
def unwritable(directory):
    """directory made unwritable for this process; skips when it stays
    writable (root ignores the mode bits; chattr +i stops root too)."""
    def writable():
        try:
            (directory / "probe").touch()
        except OSError:
            return False
        (directory / "probe").unlink()
        return True
    os.chmod(directory, 0o555)
    immutable = False
    try:
        if writable():
            immutable = subprocess.run(["chattr", "+i", str(directory)],
                                       capture_output=True).returncode == 0
        if writable():
            pytest.skip("cannot make a directory unwritable for this user")
        yield
    finally:
        if immutable:
            subprocess.run(["chattr", "-i", str(directory)], check=True)
        os.chmod(directory, 0o755)


@pytest.mark.parametrize("command", ["merge", "report"])
def test_unwritable_directory_is_refused_before_any_work(tmp_path, capsys, no_work, command):
    locked = tmp_path / "locked"
    locked.mkdir()
    with unwritable(locked):
        args = (["merge", "-o", str(locked / "merged.json"), str(RESULT)] if command == "merge"
                else ["report", str(RESULT), "-o", str(locked)])
        assert cli.main(args) == 2
        err = lines(capsys.readouterr().err)
        assert len(err) == 1 and err[0].startswith("ipcbench-report: ")
        assert f"cannot write in {locked}" in err[0], err
    assert list(locked.iterdir()) == []


# --- standard output and open descriptors ------------------------------------------

def test_merge_to_stdout_writes_only_the_json(tmp_path):
    proc = tool("merge", "-o", "-", RESULT, RESULT, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.decode() == merged_text(RESULT, RESULT)
    json.loads(proc.stdout)
    assert lines(proc.stderr.decode()) == [
        "ipcbench-report: wrote standard output (2 runs merged)"]
    assert list(tmp_path.iterdir()) == []  # no file named '-'


def test_symlink_to_dev_stdout_writes_to_standard_output(tmp_path):
    link = tmp_path / "out.json"
    link.symlink_to("/dev/stdout")
    proc = tool("merge", "-o", link, RESULT, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.decode() == merged_text(RESULT)
    assert f"wrote {link}" in proc.stderr.decode()
    assert link.is_symlink() and os.readlink(link) == "/dev/stdout"


def test_dev_fd_path_writes_through_the_open_descriptor(tmp_path):
    rfd, wfd = os.pipe()
    chunks = []
    reader = threading.Thread(target=lambda: chunks.extend(iter(lambda: os.read(rfd, 65536),
                                                                b"")))
    reader.start()
    try:
        proc = tool("merge", "-o", f"/dev/fd/{wfd}", RESULT, cwd=tmp_path, pass_fds=(wfd,))
    finally:
        os.close(wfd)
        reader.join(timeout=30)
        os.close(rfd)
    assert proc.returncode == 0, proc.stderr
    assert b"".join(chunks) == merged_text(RESULT).encode()
    assert f"wrote /dev/fd/{wfd}" in proc.stdout.decode()


def test_dev_fd_path_of_a_closed_descriptor_is_refused(tmp_path, capsys, no_work):
    fd = os.open(os.devnull, os.O_RDONLY)
    os.close(fd)  # a descriptor number that is surely not open
    assert cli.main(["merge", "-o", f"/dev/fd/{fd}", str(RESULT)]) == 2
    err = lines(capsys.readouterr().err)
    assert len(err) == 1 and f"descriptor {fd} is not open" in err[0]
