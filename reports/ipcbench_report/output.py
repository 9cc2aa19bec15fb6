"""Where the report tool writes: one rule for every kind of output path.

Every writer (report's report.html, summary.md and cases.csv, compare's
compare.html and compare.md, merge's -o file) opens its outputs with
Outputs before it loads or renders anything, and writes them at the end:

- '-' (only where -o names one file: merge): standard output; everything
  else the command prints then goes to stderr (Target.info).
- /dev/stdout, /dev/stderr, /dev/fd/N, /proc/self/fd/N (also reached through
  a symlink): the already-open descriptor N (dup'ed), written through.
- An existing FIFO or character device (also at the end of a symlink
  chain): opened up front and written through, never replaced. A FIFO with
  no reader is refused up front (O_NONBLOCK open fails with ENXIO).
- A block device, a socket, a directory, a missing directory (where parents
  are not created) or a directory the user cannot write into: refused up
  front (OutputError: exit 2, one line).
- A regular file or a new path, also at the end of a symlink chain (a
  dangling link's target is created): a temp file in the final file's
  directory, fsync, rename over it (mode 0644), so a reader never sees half a
  file and a symlink stays a symlink; the temp file is removed on any
  failure.
- A write that fails at the end (ENOSPC, EPIPE, ...): WriteError (exit 1,
  one line 'cannot write PATH: reason').
"""

import errno
import fcntl
import os
import re
import stat
import sys
import tempfile
from pathlib import Path

MODE = 0o644
STDOUT = "-"
_MAX_LINKS = 40
_FD_PATHS = (re.compile(r"^/dev/fd/(\d+)$"),
             re.compile(r"^/proc/(?:self|thread-self|%d)/fd/(\d+)$" % os.getpid()))
_STD_PATHS = {"/dev/stdin": 0, "/dev/stdout": 1, "/dev/stderr": 2}


class OutputError(Exception):
    """An output path refused before any work (exit 2): str() is the line."""

    def __init__(self, path, reason):
        super().__init__(reason)
        self.path, self.reason = str(path), reason

    def __str__(self):
        return f"{self.path}: {self.reason}"


class WriteError(Exception):
    """Writing an output failed at the end (exit 1): str() is the line."""

    def __init__(self, path, error):
        reason = error.strerror if isinstance(error, OSError) and error.strerror else str(error)
        super().__init__(reason)
        self.path, self.reason = str(path), reason

    def __str__(self):
        return f"cannot write {self.path}: {self.reason}"


def _fd_number(path):
    """N when path names an already-open descriptor of this process."""
    if path in _STD_PATHS:
        return _STD_PATHS[path]
    for pattern in _FD_PATHS:
        m = pattern.match(path)
        if m:
            return int(m.group(1))
    return None


def _absolute(path):
    """path made absolute without collapsing '..' (the kernel resolves it
    after the symlink before it)."""
    return path if os.path.isabs(path) else os.path.join(os.getcwd(), path)


def _normal(path):
    """path absolute, its directory's symlinks resolved (the last component
    left as it is, so a link there can still be seen)."""
    head, tail = os.path.split(_absolute(path))
    if tail in ("", ".", ".."):
        return os.path.realpath(path)
    return os.path.join(os.path.realpath(head), tail)


def _follow(display, path):
    """Follows a symlink chain from path: (kind, N or final path, stat or
    None, whether a symlink was followed); kind 'fd' (an open descriptor N),
    'new' or 'existing'."""
    current = _absolute(path)
    for hops in range(_MAX_LINKS):
        n = _fd_number(os.path.normpath(current))
        if n is None:
            current = _normal(current)
            n = _fd_number(current)
        if n is not None:
            return ("fd", n, None, hops > 0)
        try:
            st = os.lstat(current)
        except FileNotFoundError:
            return ("new", current, None, hops > 0)
        except OSError as e:
            raise OutputError(display, f"cannot write here: {e.strerror}") from None
        if not stat.S_ISLNK(st.st_mode):
            return ("existing", current, st, hops > 0)
        current = os.path.join(os.path.dirname(current), os.readlink(current))
    raise OutputError(display, "too many levels of symbolic links")


def _via(final, linked):
    return f" (the symlink's target {final})" if linked else ""


class Target:
    """One output, opened (or checked) up front; write() at the end."""

    def __init__(self, display, fd=None, final=None, stdout=False):
        self.display = display   # the path as the user gave it
        self.fd = fd             # written through (stdout, fd N, FIFO, char device)
        self.final = final       # else replaced atomically (regular file or new path)
        self.through = fd is not None
        self.stdout = stdout or (fd is not None and _same_file(fd, 1))
        self.done = False

    def __str__(self):
        return self.display

    @property
    def info(self):
        """Where the command's other messages go: stderr when this output is
        standard output."""
        return sys.stderr if self.stdout else sys.stdout

    def write(self, text):
        data = text.encode("utf-8")
        try:
            if self.through:
                if self.stdout:
                    sys.stdout.flush()
                _write_all(self.fd, data)
            else:
                self._replace(data)
        except OSError as e:
            raise WriteError(self.display, e) from None
        finally:
            self.close()
        self.done = True

    def _replace(self, data):
        directory, name = os.path.split(self.final)
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{name}.", suffix=".tmp")
        try:
            _write_all(fd, data)
            os.fchmod(fd, MODE)
            os.fsync(fd)
            os.close(fd)
            fd = None
            os.replace(tmp, self.final)
        except BaseException:
            if fd is not None:
                os.close(fd)
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise
        try:
            dfd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)
        except OSError:
            pass  # the rename is done; a directory that cannot be synced is no error

    def close(self):
        if self.fd is not None:
            try:
                os.close(self.fd)
            except OSError:
                pass
            self.fd = None


def _write_all(fd, data):
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _same_file(a, b):
    try:
        sa, sb = os.fstat(a), os.fstat(b)
    except OSError:
        return False
    return (sa.st_dev, sa.st_ino) == (sb.st_dev, sb.st_ino)


class Outputs:
    """The outputs of one command. Used as a context manager: on an error
    (or an interrupt) every descriptor is closed and every directory it
    created that is still empty is removed."""

    def __init__(self):
        self.targets = []
        self.created = []

    def __enter__(self):
        return self

    def __exit__(self, kind, value, tb):
        for t in self.targets:
            if not t.done:
                t.close()
        if kind is not None:
            for d in reversed(self.created):
                try:
                    os.rmdir(d)
                except OSError:
                    pass
        return False

    def directory(self, path):
        """-o DIR of report and compare: created (with its parents) when
        missing; must be a directory."""
        path = Path(path)
        missing = []
        p = Path(os.path.abspath(path))
        while not os.path.lexists(p) and p != p.parent:
            missing.append(p)
            p = p.parent
        try:
            path.mkdir(parents=True, exist_ok=True)
        except FileExistsError:
            raise OutputError(path, "not a directory (-o names the output directory)") from None
        except OSError as e:
            raise OutputError(path, f"cannot create the output directory: {e.strerror}") from None
        finally:
            self.created += [m for m in reversed(missing) if os.path.isdir(m)]
        if not path.is_dir():
            raise OutputError(path, "not a directory (-o names the output directory)")
        return path

    def file(self, path, allow_stdout=False, make_parents=False):
        """Opens or checks one output file up front; see the module's rules."""
        display = str(path)
        if display.endswith("/"):
            raise OutputError(display, "names a directory; a file is expected here")
        if allow_stdout and display == STDOUT:
            return self._add(Target(display, fd=self._dup(display, 1, "standard output"),
                                    stdout=True))
        kind, found, st, linked = _follow(display, display)
        if kind == "fd":
            return self._add(Target(display, fd=self._dup(display, found, f"descriptor {found}")))
        if kind == "new":
            self._check_directory(display, found, linked, make_parents)
            return self._add(Target(display, final=found))
        mode, via = st.st_mode, _via(found, linked)
        if stat.S_ISDIR(mode):
            raise OutputError(display, f"is a directory{via}; a file is expected here")
        if stat.S_ISBLK(mode):
            raise OutputError(display, f"is a block device{via}; refusing to write to it")
        if stat.S_ISSOCK(mode):
            raise OutputError(display, f"is a socket{via}; refusing to write to it")
        if stat.S_ISFIFO(mode) or stat.S_ISCHR(mode):
            return self._add(Target(display, fd=self._open_through(display, found, mode, via)))
        if not stat.S_ISREG(mode):
            raise OutputError(display, f"is not a regular file{via}; refusing to write to it")
        self._check_directory(display, found, linked, make_parents=False)
        return self._add(Target(display, final=found))

    def _add(self, target):
        self.targets.append(target)
        return target

    @staticmethod
    def _dup(display, n, what):
        try:
            fd = os.dup(n)
        except OSError:
            raise OutputError(display, f"{what} is not open") from None
        flags = fcntl.fcntl(fd, fcntl.F_GETFL)
        if flags & os.O_ACCMODE == os.O_RDONLY:
            os.close(fd)
            raise OutputError(display, f"{what} is not open for writing")
        return fd

    @staticmethod
    def _open_through(display, final, mode, via):
        fifo = stat.S_ISFIFO(mode)
        try:
            fd = os.open(final, os.O_WRONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
        except OSError as e:
            if fifo and e.errno == errno.ENXIO:
                raise OutputError(display, f"is a FIFO with no reader{via}; start its "
                                           "reader first (e.g. cat it in another "
                                           "shell)") from None
            raise OutputError(display, f"cannot open for writing{via}: {e.strerror}") from None
        # Written with blocking writes: a slow reader is waited for.
        flags = fcntl.fcntl(fd, fcntl.F_GETFL)
        fcntl.fcntl(fd, fcntl.F_SETFL, flags & ~os.O_NONBLOCK)
        return fd

    def _check_directory(self, display, final, linked, make_parents):
        """The directory a new or replaced file goes into: it exists (or is
        created, make_parents) and a file can be created in it."""
        directory = os.path.dirname(final)
        via = _via(final, linked)
        if make_parents and not os.path.lexists(directory):
            try:
                self.directory(directory)
            except OutputError as e:
                raise OutputError(display, e.reason) from None
        if not os.path.exists(directory):
            raise OutputError(display, f"no such directory: {directory}{via}")
        if not os.path.isdir(directory):
            raise OutputError(display, f"not a directory: {directory}{via}")
        try:  # the only sure test (root, ACLs, read-only mounts): create a file
            fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{os.path.basename(final)}.",
                                       suffix=".tmp")
        except OSError as e:
            raise OutputError(display, f"cannot write in {directory}{via}: "
                                       f"{e.strerror}") from None
        os.close(fd)
        os.unlink(tmp)
