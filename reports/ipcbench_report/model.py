"""One model of ipcbench result files, shared by every report and by compare.

A result file is validated against docs/result.schema.json before anything
reads it, so the rest of the package can trust the layout the schema
promises and never has to guess about missing keys on measured entries.
"""

import json
import math
import statistics
from dataclasses import dataclass, field
from pathlib import Path

from . import units

# The newest result format this tool reads; every version up to it is read
# (a single file of any of them is reported as it is).
SUPPORTED_SCHEMA_VERSION = 2
# Versions from which a figure means something else than in the version
# before: files on the two sides of one are never paired or pooled (compare,
# merge, the CI gate), because the same field would be two different figures.
MEANING_CHANGES = {
    2: "real_time changed meaning in version 2 (latency rows: mean round trip; "
       "throughput rows: ns per delivered message)",
}
# Package data (docs/result.schema.json links here), so an installed copy
# validates with the schema it was built with.
SCHEMA_PATH = Path(__file__).resolve().parent / "result.schema.json"

# The order in which statistics of a case are read: the median is robust to
# one noisy repetition, which is what a reader comparing mechanisms wants.
REPRESENTATIVE_AGGREGATE = "median"

LATENCY_FIELDS = ("min_ns", "p50_ns", "p90_ns", "p99_ns", "p999_ns", "p9999_ns",
                  "max_ns", "mean_ns", "stddev_ns")
NUMERIC_FIELDS = (
    "iterations", "real_time", "cpu_time", "messages", "messages_lost",
    "bytes_per_second", "items_per_second", "runner_cpu_ns_per_msg",
    "peer_cpu_ns_per_msg", "runner_ctx_switches_per_msg", "peer_ctx_switches_per_msg",
    "runner_syscalls_per_msg", "peer_syscalls_per_msg", "runner_own_syscalls_per_msg",
    "peer_own_syscalls_per_msg", "samples", *LATENCY_FIELDS, "histogram_samples",
)

# The calibration floors a case can be measured against (the file's 'floor'
# names), with how a person reads them and which kind of figure they are.
FLOOR_NAMES = {
    "payload_rtt": ("payload round trip", "latency"),
    "futex_rtt": ("futex wake-up round trip", "latency"),
    "cross_core_copy": ("cross-core copy", "throughput"),
    "memcpy": ("memcpy", "throughput"),
    # Only the report's own fallback (a file without per-case floor fields):
    "cache_line_rtt": ("cache-line round trip", "latency"),
}
# A case is unstable when its metric varies more than this across repetitions
# (the suite's own rule; used only when a file does not say).
UNSTABLE_CV = 0.05
CV_METRICS = {"latency": "p50_ns", "throughput": "bytes_per_second"}
# Where a case's peer ran: on this host, or on the remote host of a remote
# run ('ipcbench run --remote', the entry's across_hosts).
LOCAL, REMOTE = "local", "remote"
ONEWAY_FIELDS = ("oneway_min_ns", "oneway_p50_ns", "oneway_p90_ns", "oneway_p99_ns",
                 "oneway_p999_ns", "oneway_max_ns", "oneway_mean_ns", "oneway_samples")

# What set a streaming figure (schema version 2): from this share of the span
# held by the harness's credits (flow_stall_fraction) the harness, not the
# mechanism, set the throughput; from this share with the mechanism's own
# buffer full (channel_full_fraction) the mechanism's limit was reached
# most of the time (informative, not an error).
FLOW_STALL_LIMIT = 0.05
CHANNEL_FULL_LIMIT = 0.5
# How the runner waited (the entry's wait), as a pair label says it.
WAIT_VERBS = {"block": "blocks", "poll": "polls", "spin": "spins",
              "spin-then-block": "spins then blocks"}
# How the two kinds of async latency differ, one sentence each: the report
# and the summary say them wherever async latency is shown.
CLOSED_LOOP_TEXT = (
    "Closed-loop async latency keeps a window of messages in flight and times each round "
    "trip: at window 1 it is the round trip of the non-blocking path (comparable with the "
    "sync round trip); with more in flight it includes queueing behind the other messages.")
OPEN_LOOP_TEXT = (
    "Open-loop async latency sends at a fixed rate and counts each round trip from the "
    "message's intended send time, so queueing is not hidden by a slowed sender; the "
    "sender's own lateness is reported separately (lateness, sender behind).")


@dataclass(frozen=True)
class Limit:
    """Something other than the mechanism's speed that set a case's figure,
    or the mechanism's own limit: name (the CSV's limited_by), the marker
    the tables put on the case (may be ''), a short text and the legend
    line that explains the marker; fraction: the share of the span."""

    name: str
    mark: str
    short: str
    legend: str
    fraction: float | None = None

    def _with(self, fraction):
        return Limit(self.name, self.mark, self.short, self.legend, fraction)

    def text(self):
        """'‡ harness flow control (12% of the span)'."""
        share = (f" ({100 * self.fraction:.0f}% of the span)"
                 if units.is_number(self.fraction) else "")
        return f"{self.mark + ' ' if self.mark else ''}{self.short}{share}"


LIMITS = {
    "sender_behind": Limit(
        "sender_behind", "†", "sender behind schedule",
        "† sender behind: in the open loop the sender fell behind its schedule "
        "(sender_behind), so part of the latency is the sender's lateness, not the "
        "mechanism's."),
    "harness_flow_control": Limit(
        "harness_flow_control", "‡", "harness flow control",
        f"‡ limited by the harness's flow control: its in-flight credits held the sender "
        f"for {FLOW_STALL_LIMIT:.0%} of the span or more (flow_stall_fraction), so the "
        "harness, not the mechanism, set this throughput."),
    "mechanism_buffer_full": Limit(
        "mechanism_buffer_full", "", "mechanism's buffer full",
        f"mechanism's buffer full: the mechanism refused more for {CHANNEL_FULL_LIMIT:.0%} "
        "of the span or more (channel_full_fraction): its own limit, not an error."),
}


class InputError(Exception):
    """A file the tool refuses. str() is the single line the CLI prints, so
    a person sees which file and why without a traceback."""

    def __init__(self, path, reason):
        super().__init__(reason)
        self.path = str(path)
        self.reason = " ".join(str(reason).split())

    def __str__(self):
        return f"{self.path}: {self.reason}"


class VersionMismatch(InputError):
    """Two files whose schema versions give their figures different meanings
    (MEANING_CHANGES), named in the order they were given; the line says
    which to rerun (the older one)."""

    def __init__(self, first, first_version, other, other_version, change):
        super().__init__(other, change)
        self.files = ((str(first), first_version), (str(other), other_version))

    def __str__(self):
        (a, va), (b, vb) = self.files
        older, newest = (a, vb) if va < vb else (b, va)
        return (f"{a} has schema_version {va} and {b} has {vb}: {self.reason}; "
                f"rerun {older} with a suite that writes version {newest}")


# The engine of async cases written without one (before --engine existed,
# and non-pollable mechanisms) or with the default: they waited with poll.
DEFAULT_ENGINE = "default"


def engine_of(value):
    """'default' for poll or nothing written, else the engine's name."""
    if not isinstance(value, str) or not value or value == "poll":
        return DEFAULT_ENGINE
    return value


@dataclass(frozen=True, order=True)
class CaseKey:
    """The identity compare matches on: a case measured twice under the same
    key is the same case; it is the same experiment when its settings
    (Run.settings: cpus, verify, window, rate, ...) agree too. where is
    'local' (the peer on this host) or 'remote' (the peer on the remote host
    of a remote run: across_hosts), so a local and a remote case of one
    mechanism and size are never the same case."""

    mechanism: str
    mode: str
    pattern: str
    size: int
    placement: str
    where: str = LOCAL
    # The async engine (--engine) when not the default one (poll, or none
    # written): one file may hold a case on several engines, and those are
    # different cases, never repetitions of one.
    engine: str = DEFAULT_ENGINE

    @property
    def remote(self):
        return self.where == REMOTE

    def label(self):
        """'pipe/sync/latency/64 B (cross-cpu)': the name people recognise
        from the suite's console output, with the size made readable;
        '(cross-cpu, remote)' for a case measured across hosts."""
        where = ", remote" if self.remote else ""
        engine = f", {self.engine}" if self.engine != DEFAULT_ENGINE else ""
        return (f"{self.mechanism}/{self.mode}/{self.pattern}/{units.size(self.size)}"
                f" ({self.placement}{where}{engine})")

    def loose(self):
        """The key without placement: failed and skipped cases record
        placement 'unknown', yet they are the same case as a measured one
        (where it was measured still tells cases apart)."""
        return (self.mechanism, self.mode, self.pattern, self.size, self.where, self.engine)

    def local_twin(self):
        """The key of the same case measured locally (itself when local)."""
        return CaseKey(self.mechanism, self.mode, self.pattern, self.size, self.placement,
                       LOCAL, self.engine)

    def series(self):
        """'tcp', 'tcp (remote)' or 'tcp (io_uring)': the mechanism as plots
        and tables name it."""
        name = f"{self.mechanism} (remote)" if self.remote else self.mechanism
        return f"{name} ({self.engine})" if self.engine != DEFAULT_ENGINE else name


@dataclass(frozen=True)
class SeriesKey:
    """A line on a plot or a row of a ranking: a case key without pattern
    and size, and the run it is from (compared by its label, not by
    identity)."""

    run: object = field(compare=False, hash=False)
    run_label: str = ""
    mechanism: str = ""
    mode: str = ""
    placement: str = ""
    where: str = LOCAL
    engine: str = DEFAULT_ENGINE


def series_key(run, case):
    k = case.key
    return SeriesKey(run, getattr(run, "label", ""), k.mechanism, k.mode, k.placement, k.where,
                     k.engine)


@dataclass(frozen=True)
class Floor:
    """The floor a case is measured against: its name (a FLOOR_NAMES key),
    figure (ns or bytes/s), the case's ratio to it, or why none applies.
    origin is 'case' (the case's own fields, the truth) or 'computed' (by
    the report, from the calibration, for a file without them). measured is
    the file's floor_source: 'calibration' (the run's calibration) or
    'adjacent' (re-measured right before the case); '' when not said."""

    name: str | None = None
    value: float | None = None
    ratio: float | None = None
    note: str = ""
    origin: str = "case"
    measured: str = ""

    @property
    def adjacent(self):
        return self.measured == "adjacent"

    @property
    def label(self):
        return FLOOR_NAMES.get(self.name, (self.name or "", ""))[0]

    @property
    def kind(self):
        return FLOOR_NAMES.get(self.name, ("", ""))[1]

    def value_text(self):
        if self.value is None:
            return ""
        return (units.ns(self.value) if self.kind == "latency"
                else units.bytes_per_second(self.value))


@dataclass(frozen=True)
class Stability:
    """How much a case's figure varied across its repetitions: cv of metric
    (a fraction), and whether that makes it unstable. source says where it
    came from: 'file' (the suite's cv field), 'aggregate' (Google Benchmark's
    cv aggregate of the metric), 'samples' (computed from the repetitions)."""

    cv: float
    metric: str
    unstable: bool
    source: str = "file"


@dataclass
class Case:
    """All entries of one case in one file: its repetitions and aggregates."""

    key: CaseKey
    entries: list = field(default_factory=list)

    @property
    def iterations(self):
        """Measured repetitions only, in file order."""
        return [e for e in self.entries if e["run_type"] == "iteration"
                and not e.get("skipped") and not e.get("error_occurred")]

    @property
    def aggregates(self):
        """{'mean': entry, 'median': entry, ...} when the run had repetitions."""
        return {e["aggregate_name"]: e for e in self.entries
                if e["run_type"] == "aggregate" and not e.get("error_occurred")
                and not e.get("skipped")}

    # Set by the loader from ipcbench.flagged when the entries themselves do
    # not say (the per-entry measurement_error is the primary record).
    flagged_reason: str = ""

    @property
    def status(self):
        """'failed' wins over 'skipped' wins over 'flagged' wins over 'ok':
        one failed repetition makes the whole case untrustworthy, and a case
        the sanity gate flagged was measured but is a measurement error, not
        a result."""
        if any(e.get("error_occurred") for e in self.entries):
            return "failed"
        if any(e.get("skipped") for e in self.entries):
            return "skipped"
        if not self.iterations:
            return "failed"
        return "flagged" if self.measurement_error else "ok"

    @property
    def message(self):
        """The failure, skip or measurement-error reason ('' for a result)."""
        for e in self.entries:
            if e.get("error_occurred"):
                return e.get("error_message", "")
        for e in self.entries:
            if e.get("skipped"):
                return e.get("skip_message", "")
        if not self.iterations:
            return "no measured repetition"
        return self.measurement_error

    @property
    def measurement_error(self):
        """Why the sanity gate flagged the case, or '' when it did not."""
        for e in self.entries:
            reason = e.get("measurement_error")
            if isinstance(reason, str) and reason:
                return reason
        return self.flagged_reason

    @property
    def flagged(self):
        return self.status == "flagged"

    @property
    def ok(self):
        return self.status == "ok"

    @property
    def repetitions(self):
        return len(self.iterations)

    @property
    def cpus(self):
        for e in self.entries:
            if e.get("cpus"):
                return list(e["cpus"])
        return []

    def _representative_entry(self):
        """The entry whose counters stand for the case: the median aggregate
        when there is one, the only repetition otherwise."""
        aggs = self.aggregates
        if REPRESENTATIVE_AGGREGATE in aggs:
            return aggs[REPRESENTATIVE_AGGREGATE]
        its = self.iterations
        return its[0] if len(its) == 1 else None

    def value(self, name):
        """The case's representative value of a numeric field, or None.

        Median over repetitions (Google Benchmark's median aggregate, or the
        median of the iteration values when the file has no aggregates or
        its aggregate lacks the field)."""
        entry = self._representative_entry()
        if entry is not None and name in entry:
            v = entry.get(name)
            return v if units.is_number(v) else None
        values = self.samples(name)
        return statistics.median(values) if values else None

    def samples(self, name):
        """The per-repetition values of a field: what a significance test needs."""
        return [e[name] for e in self.iterations if units.is_number(e.get(name))]

    def cv(self, name):
        """Coefficient of variation (stddev/mean) over repetitions, or None."""
        entry = self.aggregates.get("cv")
        v = entry.get(name) if entry else None
        return v if units.is_number(v) else None

    def field(self, name):
        """A per-case field the suite writes on every entry of a case (floor,
        cv, ...): (True, value) from the representative entry, else from the
        first measured entry that has it; (False, None) when no entry has it."""
        entry = self._representative_entry()
        measured = [e for e in self.entries
                    if not e.get("error_occurred") and not e.get("skipped")]
        for e in ([entry] if entry is not None else []) + measured:
            if name in e:
                return True, e[name]
        return False, None

    def floor(self):
        """The case's own floor fields (floor, floor_value, floor_ratio,
        floor_note) as a Floor, or None when the file does not carry them."""
        has_name, name = self.field("floor")
        has_ratio = self.field("floor_ratio")[0]
        if not has_name and not has_ratio:
            return None
        name = name if isinstance(name, str) else None
        value = self.field("floor_value")[1]
        ratio = self.value("floor_ratio")
        note = self.field("floor_note")[1]
        measured = self.field("floor_source")[1]
        return Floor(name, value if units.is_number(value) else None,
                     ratio, note if isinstance(note, str) else "", "case",
                     measured if isinstance(measured, str) else "")

    def stability(self):
        """The case's variation across repetitions as a Stability, or None
        (a single repetition). The suite's cv fields are the truth; for a
        file without them, Google Benchmark's cv aggregate of the same metric,
        else the cv computed from the repetitions."""
        has_cv, cv = self.field("cv")
        metric = CV_METRICS.get(self.key.pattern, "p50_ns")
        if has_cv and units.is_number(cv):
            has_metric, m = self.field("cv_metric")
            unstable = self.field("unstable")[1]
            if not isinstance(unstable, bool):
                unstable = cv > UNSTABLE_CV
            return Stability(cv, m if has_metric and isinstance(m, str) else metric,
                             unstable, "file")
        v = self.cv(metric)
        if v is not None:
            return Stability(v, metric, v > UNSTABLE_CV, "aggregate")
        values = self.samples(metric)
        if len(values) >= 2 and statistics.fmean(values) > 0:
            v = statistics.stdev(values) / statistics.fmean(values)
            return Stability(v, metric, v > UNSTABLE_CV, "samples")
        return None

    @property
    def unstable(self):
        st = self.stability()
        return bool(st and st.unstable)

    def figure(self):
        """(field, value) of the case's headline figure: p50 for latency,
        bytes/s for throughput."""
        fld = CV_METRICS.get(self.key.pattern, "p50_ns")
        return fld, self.value(fld)

    def histogram(self):
        """[(percentile, value_ns)] of all repetitions merged (an aggregate
        entry carries the merged spectrum), else of the single repetition."""
        for entry in list(self.aggregates.values()) + self.iterations[:1]:
            hist = entry.get("histogram")
            if hist:
                return [(p["percentile"], p["value_ns"]) for p in hist]
        return []

    @property
    def across_hosts(self):
        """True when the case was measured with the peer on the remote host."""
        return self.key.remote

    @property
    def remote_address(self):
        """The serve address of an across-hosts case (its entries' remote.address), ''."""
        for e in self.entries:
            remote = e.get("remote")
            if isinstance(remote, dict) and isinstance(remote.get("address"), str):
                return remote["address"]
        return ""

    @property
    def peer_cpu(self):
        """The peer's CPU on the remote host (remote.peer_cpu), None when
        unknown or not across hosts."""
        for e in self.entries:
            remote = e.get("remote")
            cpu = remote.get("peer_cpu") if isinstance(remote, dict) else None
            if isinstance(cpu, int) and not isinstance(cpu, bool) and cpu >= 0:
                return cpu
        return None

    @property
    def oneway_note(self):
        """The entries' oneway_note ('' when none): which clock the one-way
        times come from, or why there are none (across hosts)."""
        note = self.field("oneway_note")[1]
        return note if isinstance(note, str) else ""

    def oneway(self, name="oneway_p50_ns"):
        """A one-way figure of an async latency case, or None (none across hosts)."""
        return self.value(name)

    def cpu_ns_per_msg(self):
        """Runner plus peer CPU time per message: the whole cost of the IPC."""
        runner = self.value("runner_cpu_ns_per_msg")
        peer = self.value("peer_cpu_ns_per_msg")
        if runner is None or peer is None:
            return None
        return runner + peer

    @property
    def wait(self):
        """How the runner waited for a message (schema version 2: block,
        poll, spin, spin-then-block); '' when the file does not say."""
        w = self.field("wait")[1]
        return w if isinstance(w, str) else ""

    @property
    def copies(self):
        """Copies of the payload per message on the case's path (0: a loan
        API, whose bytes per second are bytes handed over, not moved), or
        None when the file does not say."""
        c = self.field("copies")[1]
        return c if isinstance(c, int) and not isinstance(c, bool) else None

    @property
    def sender_behind(self):
        """Open loop: True when a repetition's sender fell behind its
        schedule (sender_behind), so the sender, not the mechanism, set part
        of the figure."""
        entry = self._representative_entry()
        measured = self.iterations + ([entry] if entry is not None else [])
        return any(e.get("sender_behind") is True for e in measured)

    def flow_stall(self):
        """Share of the span the harness's credits held the sender
        (flow_stall_fraction), or None."""
        return self.value("flow_stall_fraction")

    def channel_full(self):
        """Share of the span the mechanism's own buffer was full
        (channel_full_fraction), or None."""
        return self.value("channel_full_fraction")

    @property
    def harness_limited(self):
        """True when the harness's flow control held the sender for at least
        FLOW_STALL_LIMIT of the span: the harness set the figure."""
        v = self.flow_stall()
        return v is not None and v >= FLOW_STALL_LIMIT

    @property
    def buffer_full(self):
        """True when the mechanism's buffer was full for at least
        CHANNEL_FULL_LIMIT of the span: the mechanism's own limit
        (informative, not an error)."""
        v = self.channel_full()
        return v is not None and v >= CHANNEL_FULL_LIMIT

    def limits(self):
        """[Limit] of what, besides the mechanism, set the case's figure
        (sender behind, harness flow control) and the mechanism's own buffer
        limit, in that order; [] for most cases."""
        out = []
        if self.sender_behind:
            out.append(LIMITS["sender_behind"])
        if self.harness_limited:
            out.append(LIMITS["harness_flow_control"]._with(self.flow_stall()))
        if self.buffer_full:
            out.append(LIMITS["mechanism_buffer_full"]._with(self.channel_full()))
        return out


@dataclass
class Run:
    """One result file: the run's context and its cases."""

    path: Path
    raw: dict
    cases: dict
    label: str = ""

    @property
    def meta(self):
        return self.raw["ipcbench"]

    @property
    def host(self):
        return self.meta["host"]

    @property
    def load_sweeps(self):
        """ipcbench.load_sweeps (run --load-sweep): one dict per mechanism,
        size and placement; [] when the file has none."""
        sweeps = self.meta.get("load_sweeps")
        return [s for s in sweeps if isinstance(s, dict)] if isinstance(sweeps, list) else []

    def load_steps(self, mechanism, size, placement, roles=("step",)):
        """The measured open-loop parts of one sweep with a load_role in
        roles (the steps, cases of pattern load/<step>; 'unloaded' adds the
        unloaded figure), by offered rate."""
        steps = [c for c in self.case_list() if c.key.pattern.startswith("load/")
                 and c.key.mechanism == mechanism and c.key.size == size
                 and c.key.placement == placement
                 and c.field("load_role")[1] in roles and c.value("offered_rate")]
        return sorted(steps, key=lambda c: c.value("offered_rate"))

    @property
    def schema_version(self):
        return self.meta["schema_version"]

    @property
    def config(self):
        return self.meta["configuration"]

    @property
    def context(self):
        return self.raw.get("context", {})

    @property
    def complete(self):
        return self.meta["complete"]

    @property
    def calibration(self):
        """The calibration (ipcbench.calibration) when the suite measured it,
        None when it was skipped or the file predates it."""
        cal = self.meta.get("calibration")
        return cal if isinstance(cal, dict) and cal else None

    @property
    def has_calibration_field(self):
        """True when the file is from a suite that calibrates (the key is
        there, even if null because calibration was skipped)."""
        return "calibration" in self.meta

    @property
    def calibration_note(self):
        """Why there is no calibration ('' when there is one, or none was
        expected)."""
        note = self.meta.get("calibration_note")
        return note if isinstance(note, str) else ""

    def calibration_placements(self):
        """{placement: figures} of the calibration, in the file's order; empty
        without calibration (or with a layout this tool does not know, such
        as the flat one of early development files)."""
        per = (self.calibration or {}).get("placements")
        if not isinstance(per, dict):
            return {}
        return {p: v for p, v in per.items() if isinstance(v, dict)}

    def calibration_for(self, placement):
        """The calibration figures measured on one placement's CPUs (a dict:
        cache_line_rtt_ns, payload_rtt_ns by size, ...), or None."""
        return self.calibration_placements().get(placement)

    @property
    def harness_ns(self):
        """The harness's own cost per round trip (calibration.harness_ns), or None."""
        v = (self.calibration or {}).get("harness_ns")
        return v if units.is_number(v) else None

    @property
    def clock_read_ns(self):
        v = (self.calibration or {}).get("clock_read_ns")
        return v if units.is_number(v) else None

    @property
    def flagged(self):
        """[{'name', 'reason'}]: the cases the sanity gate flagged (ipcbench.flagged)."""
        items = self.meta.get("flagged")
        return [f for f in items if isinstance(f, dict)] if isinstance(items, list) else []

    def flagged_cases(self):
        return [c for c in self.cases.values() if c.status == "flagged"]

    def unstable_cases(self):
        return [c for c in self.case_list() if c.unstable]

    def configured_placements(self):
        """The placements the run was asked for (configuration.placements),
        else those its cases ran under."""
        configured = self.config.get("placements")
        if isinstance(configured, list) and configured:
            return [p for p in configured if isinstance(p, str)]
        return self.placements(status=None)

    @property
    def date(self):
        return self.context.get("date", "")

    @property
    def remote(self):
        """ipcbench.remote of a remote run (address, protocol_version, host,
        cpus), None for a local run or a file from before remote runs."""
        remote = self.meta.get("remote")
        return remote if isinstance(remote, dict) else None

    @property
    def remote_host(self):
        """The remote (serve) host as ipcbench.host describes a host, {} when none."""
        host = (self.remote or {}).get("host")
        return host if isinstance(host, dict) else {}

    @property
    def remote_address(self):
        """The serve address of a remote run, '' for a local run; falls back
        to the cases' own remote.address."""
        address = (self.remote or {}).get("address")
        if isinstance(address, str) and address:
            return address
        for case in self.cases.values():
            if case.remote_address:
                return case.remote_address
        return ""

    @property
    def remote_cpus(self):
        """The CPUs serve was given ([] unpinned or unknown)."""
        cpus = (self.remote or {}).get("cpus")
        return [c for c in cpus if isinstance(c, int)] if isinstance(cpus, list) else []

    def remote_host_label(self):
        """'serve-b (198.18.0.1:7070)': the remote host as tables name it."""
        name = self.remote_host.get("hostname")
        address = self.remote_address
        if isinstance(name, str) and name and address:
            return f"{name} ({address})"
        return (name if isinstance(name, str) and name else "") or address or "remote host"

    def wheres(self):
        """'local' and/or 'remote': where this run's cases were measured."""
        return _ordered(k.where for k in self.cases)

    def has_remote_cases(self):
        return any(k.remote for k in self.cases)

    def case_list(self, pattern=None, status="ok"):
        """Cases in the suite's order, filtered by pattern and status
        (status None means every case)."""
        return [c for c in self.cases.values()
                if (pattern is None or c.key.pattern == pattern)
                and (status is None or c.status == status)]

    def mechanisms(self):
        """Mechanisms in registry order (the configuration's order), then any
        others in file order, so colours follow the suite's own listing."""
        order = list(self.config.get("mechanisms", []))
        for key in self.cases:
            if key.mechanism not in order:
                order.append(key.mechanism)
        return [m for m in order if any(k.mechanism == m for k in self.cases)]

    def modes(self):
        return _ordered(k.mode for k in self.cases)

    def placements(self, status="ok"):
        return _ordered(c.key.placement for c in self.case_list(status=status))

    def sizes(self, pattern=None):
        return sorted({c.key.size for c in self.case_list(pattern)})

    def calibrated(self, placement, name, size=None):
        """One calibration figure of a placement: a plain one (futex_rtt_ns)
        or, with size, the per-size one (payload_rtt_ns['64']); None when it
        was not measured."""
        v = (self.calibration_for(placement) or {}).get(name)
        if size is not None:
            v = v.get(str(size)) if isinstance(v, dict) else None
        return v if units.is_number(v) and v > 0 else None

    def latency_floor(self, placement, size):
        """(name, ns) of the lowest round trip the calibration allows at a
        size on a placement: the payload round trip at that size, else the
        cache-line round trip (a lower bound for every size); (None, None)."""
        v = self.calibrated(placement, "payload_rtt_ns", size)
        if v is not None:
            return "payload_rtt", v
        v = self.calibrated(placement, "cache_line_rtt_ns")
        if v is not None:
            return "cache_line_rtt", v
        return None, None

    def latency_floor_ns(self, size, placement="cross-cpu"):
        return self.latency_floor(placement, size)[1]

    def bandwidth_ceiling(self, size, placement="cross-cpu"):
        """The calibrated memcpy bandwidth for a size, the ceiling no
        mechanism that copies the payload can beat; None when not measured."""
        return self.calibrated(placement, "memcpy_bytes_per_second", size)

    def floor(self, case):
        """The floor a case is measured against, as a Floor, or None.

        The case's own fields (floor, floor_value, floor_ratio, floor_note)
        are the truth, even when they say no floor applies. Only a case
        without them (a file from before per-case floors) gets one computed
        here: p50 over the payload round trip calibrated on its placement."""
        own = case.floor()
        if own is not None:
            return own
        if case.key.pattern != "latency" or case.status not in ("ok", "flagged"):
            return None
        name, floor = self.latency_floor(case.key.placement, case.key.size)
        p50 = case.value("p50_ns")
        if floor is None or p50 is None:
            return None
        return Floor(name, floor, p50 / floor, "", "computed", "calibration")

    def floor_ratio(self, case):
        """measured / floor for a case (see floor()), or None."""
        f = self.floor(case)
        return f.ratio if f is not None else None

    def settings(self, case):
        """{setting: value} of every setting besides the case key that changes
        what the case's figures mean (SETTINGS): two cases of one key are the
        same experiment only when these agree (setting_differences).

        Each is read from the case's first measured entry (else its first
        entry) and, where the entry lacks it, from ipcbench.configuration
        (version-1 files have verify, window and rate only there); MISSING
        when neither says. Only the settings that apply are present:
          cpus      measured cases ([runner, peer]; [] unpinned); a failed or
                    skipped case records none (placement 'unknown')
          verify    every case
          engine    every case; none written means 'default' (one engine)
          rate      async latency (None: closed loop)
          window    async latency in a closed loop; and any async case whose
                    entry has a window (version 1: the open loop's cap and
                    throughput's acknowledgement window; version 2 writes
                    null there)
          in_flight_limit_messages, in_flight_limit_bytes: async throughput,
                    from the entry only: they are the limits the case ran
                    under (from --in-flight-limit and the receive buffer), and
                    the configuration's in_flight_limit_bytes is only the cap
                    asked for; a failed entry has none (MISSING)
        """
        measured = case.iterations
        entry = measured[0] if measured else (case.entries[0] if case.entries else {})
        cfg = self.config if isinstance(self.config, dict) else {}
        mode, pattern = case.key.mode, case.key.pattern
        out = {}
        if measured:
            cpus = entry.get("cpus")
            out["cpus"] = list(cpus) if isinstance(cpus, list) else MISSING
        out["verify"] = _setting(entry, cfg, "verify")
        engine = entry.get("engine")
        if engine is None and mode == "async":
            engine = cfg.get("engine")
        out["engine"] = engine_of(engine)
        if mode != "async":
            return out
        if pattern == "latency":
            rate = _setting(entry, cfg, "rate")
            out["rate"] = rate
            window = (entry["window"] if "window" in entry
                      else cfg.get("window", MISSING) if rate is None else None)
            if rate is None or window is not None:
                out["window"] = window
        else:
            if entry.get("window") is not None:
                out["window"] = entry["window"]
            for name in ("in_flight_limit_messages", "in_flight_limit_bytes"):
                out[name] = entry.get(name, MISSING)
        return out

    def in_flight(self, case):
        """How the case kept messages in flight, as an InFlight (see
        in_flight_of), from its first measured entry (else its first) and,
        for what a version-1 entry lacks, the configuration."""
        measured = case.iterations
        entry = measured[0] if measured else (case.entries[0] if case.entries else {})
        return in_flight_of(entry, self.config, case.key.mode, case.key.pattern)


@dataclass(frozen=True)
class InFlight:
    """How a case kept messages in flight. loop is 'sync' (one at a time,
    or a sync stream without a recorded limit), 'closed' (async latency:
    window messages in flight; queueing when more than one), 'open' (async
    latency at a fixed rate: messages per second) or 'stream' (throughput
    with acknowledgements: limit_messages and what set it, limit_source
    'harness' or 'receive_buffer'; version 1: its acknowledgement window)."""

    loop: str
    window: int | None = None
    rate: float | None = None
    queueing: bool = False
    limit_messages: float | None = None
    limit_source: str = ""

    @property
    def like_sync(self):
        """True when the figure means what a sync round trip means: an
        async closed loop at window 1 (no queueing)."""
        return self.loop == "closed" and self.window == 1 and not self.queueing

    def text(self):
        """'1', '16 (queueing)', 'open loop 2000/s', 'limit 65536 msgs
        (harness)', 'ack window 16'; '' for sync."""
        if self.loop == "closed":
            if self.window is None:
                return "closed loop, window not recorded"
            return f"{self.window}" + (" (queueing)" if self.queueing else "")
        if self.loop == "open":
            return f"open loop {_plain(self.rate)}/s"
        if self.loop == "stream":
            if self.limit_messages is not None:
                source = {"harness": "harness", "receive_buffer": "receive buffer"}.get(
                    self.limit_source, self.limit_source)
                return (f"limit {_plain(self.limit_messages)} msgs"
                        + (f" ({source})" if source else ""))
            if self.window is not None:
                return f"ack window {self.window}"
        return ""

    def why_not_like_sync(self):
        """Why an async latency figure is not comparable with the sync round
        trip ('' when it is)."""
        if self.like_sync or self.loop not in ("closed", "open"):
            return ""
        if self.loop == "open":
            return (f"open loop {_plain(self.rate)}/s: latency from the intended send "
                    "times")
        if self.window is None:
            return "closed loop, window not recorded"
        return f"window {self.window}: includes queueing"


def _plain(value):
    """A count or rate without a unit or exponent: '2000', '65536'."""
    if not units.is_number(value):
        return "?"
    return str(int(value)) if float(value).is_integer() else units.count(value)


def in_flight_of(entry, config, mode, pattern):
    """The InFlight of one entry (config: ipcbench.configuration, for the
    window and rate a version-1 entry may leave there). Async latency: an
    open loop when rate is a number, else a closed loop of window messages,
    queueing when includes_queueing says so (version 1: window over 1).
    Throughput: the in-flight limit when the entry has one (async and lossy
    streams), else an async entry's acknowledgement window (version 1)."""
    cfg = config if isinstance(config, dict) else {}
    entry = entry if isinstance(entry, dict) else {}
    if pattern == "latency":
        if mode != "async":
            return InFlight("sync")
        rate = entry["rate"] if "rate" in entry else cfg.get("rate")
        if units.is_number(rate) and rate > 0:
            return InFlight("open", rate=rate)
        window = entry.get("window")
        if not units.is_number(window):  # a version-1 row may leave it to the run's
            window = cfg.get("window")
        window = int(window) if units.is_number(window) and window >= 1 else None
        queueing = entry.get("includes_queueing")
        if not isinstance(queueing, bool):
            queueing = window is not None and window > 1
        return InFlight("closed", window=window, queueing=queueing)
    limit = entry.get("in_flight_limit_messages")
    if units.is_number(limit):
        source = entry.get("in_flight_limit_source")
        return InFlight("stream", limit_messages=limit,
                        limit_source=source if isinstance(source, str) else "")
    if mode == "async":
        window = entry.get("window")
        return InFlight("stream", window=int(window) if units.is_number(window)
                        and window >= 1 else None)
    return InFlight("sync")


def entry_limits(entry):
    """[Limit] of one entry, as Case.limits() for a case (the CSV's
    limited_by); [] on a spread aggregate (stddev, cv), whose fractions are
    not shares of a span."""
    if not isinstance(entry, dict) or entry.get("aggregate_name") in ("stddev", "cv"):
        return []
    out = []
    if entry.get("sender_behind") is True:
        out.append(LIMITS["sender_behind"])
    stall, full = entry.get("flow_stall_fraction"), entry.get("channel_full_fraction")
    if units.is_number(stall) and stall >= FLOW_STALL_LIMIT:
        out.append(LIMITS["harness_flow_control"]._with(stall))
    if units.is_number(full) and full >= CHANNEL_FULL_LIMIT:
        out.append(LIMITS["mechanism_buffer_full"]._with(full))
    return out


class _Missing:
    """A setting neither the entry nor the configuration records."""

    def __repr__(self):
        return "MISSING"


MISSING = _Missing()
# The settings that change what a case's figures mean, besides the case key
# (mechanism, mode, pattern, size, placement, where), in the order they are
# reported.
SETTINGS = ("cpus", "verify", "engine", "rate", "window", "in_flight_limit_messages",
            "in_flight_limit_bytes")


def _setting(entry, config, name):
    if name in entry:
        return entry[name]
    return config.get(name, MISSING)


def setting_differences(run_a, case_a, run_b, case_b):
    """[(setting, value in a, value in b)]: the settings under which two cases
    of one key were measured differently ([] when they are the same
    experiment). A setting one side does not record (MISSING) counts as
    different only when both cases were measured: a failed or skipped case
    records less, and is still the same case that now fails."""
    sa, sb = run_a.settings(case_a), run_b.settings(case_b)
    both_measured = bool(case_a.iterations) and bool(case_b.iterations)
    out = []
    for name in SETTINGS:
        if name not in sa or name not in sb:
            continue  # does not apply on a side (decided by a setting compared here)
        va, vb = sa[name], sb[name]
        if va is MISSING and vb is MISSING:
            continue
        if (va is MISSING or vb is MISSING) and not both_measured:
            continue
        if va is MISSING or vb is MISSING or va != vb:
            out.append((name, va, vb))
    return out


def setting_text(name, value):
    """A setting's value as the mismatch lines print it."""
    if value is MISSING:
        return "not recorded"
    if name == "rate":
        return "closed loop" if value is None else f"{value} msg/s"
    if name == "cpus":
        return "[" + ", ".join(str(c) for c in value) + "]" if value else "[] (unpinned)"
    if value is None:
        return "none"
    if name == "in_flight_limit_bytes" and units.is_number(value):
        return units.size(value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))  # counters are written as doubles
    return str(value)


def differences_text(differences, a="base", b="new"):
    """'window 16 (base) vs 1 (new); verify header (base) vs full (new)'."""
    return "; ".join(f"{name} {setting_text(name, va)} ({a}) vs {setting_text(name, vb)} ({b})"
                     for name, va, vb in differences)


def _ordered(items):
    """Unique items in first-seen order."""
    seen = []
    for item in items:
        if item not in seen:
            seen.append(item)
    return seen


_VALIDATORS = {}


def _validator(schema_path):
    """A compiled validator per schema file: compiling once keeps a report
    over many files fast."""
    schema_path = Path(schema_path)
    if schema_path not in _VALIDATORS:
        from jsonschema.validators import validator_for
        try:
            schema = json.loads(schema_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise InputError(schema_path, f"cannot read the result schema: {e}") from e
        cls = validator_for(schema)
        _VALIDATORS[schema_path] = cls(schema)
    return _VALIDATORS[schema_path]


def _json_path(parts):
    out = "$"
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out


def _reject_constant(name):
    raise ValueError(f"{name} is not valid JSON")


def _parse(path, text=None):
    """The file's JSON, strictly (NaN/Infinity refused, as the suite never
    writes them)."""
    try:
        if text is None:
            text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(path, f"cannot read: {e.strerror if isinstance(e, OSError) else e}")
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except ValueError as e:
        raise InputError(path, f"not valid JSON: {e}") from None
    except RecursionError:
        raise InputError(path, "not a result file: JSON nested too deeply to read") from None


def _check_shape(path, data):
    """Refuses files that are JSON but not a suite result before the schema
    does, with a message that says what the file looks like instead."""
    if not isinstance(data, dict):
        raise InputError(path, "not an ipcbench result file (the JSON is not an object)")
    if "ipcbench" not in data:
        what = ("a plain Google Benchmark file" if "benchmarks" in data
                else "JSON without an 'ipcbench' section")
        raise InputError(path, f"not an ipcbench result file ({what}); "
                               "write one with 'ipcbench run --out FILE'")
    meta = data["ipcbench"]
    version = meta.get("schema_version") if isinstance(meta, dict) else None
    if units.is_number(version) and version > SUPPORTED_SCHEMA_VERSION:
        raise InputError(path, f"schema_version {version} is newer than this report "
                               f"tool supports ({SUPPORTED_SCHEMA_VERSION}); "
                               "use the report tool of the suite that wrote it")


def _check_schema(path, data, schema_path):
    from jsonschema.exceptions import best_match
    try:
        error = best_match(_validator(schema_path).iter_errors(data))
    except RecursionError:
        raise InputError(path, "does not match the result schema: nested too deeply "
                               "to check") from None
    if error is None:
        return
    if error.validator == "not":
        detail = f"must not match {json.dumps(error.validator_value, sort_keys=True)}"
    elif error.validator is None:  # the schema 'false': the key must be absent
        detail = "must be absent here (see the schema's rule for this entry)"
    else:
        detail = " ".join(error.message.split())
    if len(detail) > 200:
        detail = detail[:197] + "..."
    raise InputError(path, f"does not match the result schema at "
                           f"{_json_path(error.absolute_path)}: {detail}")


def pattern_of(entry):
    """The pattern a case is keyed by: a load sweep's rows (pattern 'load')
    are one case per part of the sweep, 'load/peak', 'load/round-trip',
    'load/unloaded', 'load/50%', so its steps are never repetitions of one case and compare
    pairs the same step across runs."""
    pattern = entry["pattern"]
    if pattern != "load":
        return pattern
    part = entry.get("load_step") or entry.get("load_role") or "unknown"
    return f"load/{part}"


def _cases(data):
    """Groups the benchmark entries by case key, keeping file order; a case
    named in ipcbench.flagged is flagged even if its entries do not say."""
    cases = {}
    for entry in data["benchmarks"]:
        key = CaseKey(entry["mechanism"], entry["mode"], pattern_of(entry),
                      int(entry["message_size"]), entry["placement"],
                      REMOTE if entry.get("across_hosts") is True else LOCAL,
                      engine_of(entry.get("engine")))
        cases.setdefault(key, Case(key)).entries.append(entry)
    flagged = data.get("ipcbench", {}).get("flagged")
    reasons = {f.get("name"): f.get("reason") or "flagged by the sanity gate"
               for f in (flagged if isinstance(flagged, list) else [])
               if isinstance(f, dict)}
    if reasons:
        for case in cases.values():
            for e in case.entries:
                reason = reasons.get(e.get("run_name")) or reasons.get(e.get("name"))
                if reason:
                    case.flagged_reason = str(reason)
                    break
    return cases


def read(path, text=None):
    """The file's JSON once it is known to be a suite result of a schema
    version this tool reads (not yet checked against the schema), or raises
    InputError. With text, reads that text as the file's content."""
    path = Path(path)
    data = _parse(path, text)
    _check_shape(path, data)
    return data


def load(path, allow_incomplete=False, schema_path=None, text=None, data=None):
    """Reads and validates one result file into a Run, or raises InputError.
    With text, validates that text as the file's content (merge checks the
    file it is about to write); with data, the file's JSON as read() gave it.

    Checks run from the most to the least basic (readable, JSON, a suite
    result, a schema version we know, the schema, complete) so the one line
    reported is the most useful one."""
    path = Path(path)
    if data is None:
        data = read(path, text)
    _check_schema(path, data, SCHEMA_PATH if schema_path is None else schema_path)
    if not data["ipcbench"]["complete"] and not allow_incomplete:
        raise InputError(path, "incomplete run ('complete': false: the run was interrupted); "
                               "rerun it, or pass --allow-incomplete")
    return Run(path=path, raw=data, cases=_cases(data))


def load_all(paths, allow_incomplete=False, schema_path=None, comparable=False):
    """Loads several files and labels them so a reader can tell them apart.
    With comparable (compare, merge), refuses files whose schema versions
    give their figures different meanings (check_comparable), right after
    reading them and before the schema: the version is the more basic
    reason, and a schema that describes one version would refuse the other."""
    paths = [Path(p) for p in paths]
    docs = [read(p) for p in paths]
    if comparable:
        check_comparable([(p, d["ipcbench"].get("schema_version")) for p, d in zip(paths, docs)])
    runs = [load(p, allow_incomplete, schema_path, data=d) for p, d in zip(paths, docs)]
    assign_labels(runs)
    return runs


def meaning_change(version_a, version_b):
    """The reason (MEANING_CHANGES) why figures of two schema versions are
    not comparable, or None when they mean the same."""
    if not (units.is_number(version_a) and units.is_number(version_b)):
        return None  # not a version at all: the schema says so, with its location
    low, high = sorted((version_a, version_b))
    for version in sorted(MEANING_CHANGES, reverse=True):
        if low < version <= high:
            return MEANING_CHANGES[version]
    return None


def check_comparable(versions):
    """Raises VersionMismatch for the first file, in order, whose schema
    version means something else than the first file's: versions is
    [(path, schema_version)]."""
    first, v0 = versions[0]
    for path, v in versions[1:]:
        change = meaning_change(v0, v)
        if change is not None:
            raise VersionMismatch(first, v0, path, v, change)


def assign_labels(runs):
    """Labels runs by host name; adds the file name where hosts coincide and
    more of the path, then a number, until every label is unique."""
    def candidates(run):
        host = run.host.get("hostname") or "unknown host"
        parts = run.path.parts
        yield host
        yield f"{host} · {run.path.name}"
        if len(parts) > 1:
            yield f"{host} · {Path(*parts[-2:])}"
        yield f"{host} · {run.path}"

    options = [list(candidates(r)) for r in runs]
    level = [0] * len(runs)
    while True:
        labels = [options[i][min(level[i], len(options[i]) - 1)] for i in range(len(runs))]
        dups = {lbl for lbl in labels if labels.count(lbl) > 1}
        if not dups or all(level[i] >= len(options[i]) - 1
                           for i, lbl in enumerate(labels) if lbl in dups):
            break
        for i, lbl in enumerate(labels):
            if lbl in dups:
                level[i] += 1
    seen = {}
    for run, lbl in zip(runs, labels):
        seen[lbl] = seen.get(lbl, 0) + 1
        run.label = lbl if labels.count(lbl) == 1 else f"{lbl} #{seen[lbl]}"
    return runs


def same_host(a, b):
    """True when two runs are from the same machine as far as the files tell:
    same host name and CPU model."""
    return (a.host.get("hostname") == b.host.get("hostname")
            and a.host.get("cpu_model") == b.host.get("cpu_model"))


@dataclass(frozen=True)
class LocalRemote:
    """One case measured both locally and across hosts: the local case (and
    its run), the remote one (and its run), the headline figure of each
    (p50 for latency, bytes/s for throughput) and remote / local."""

    local_run: object
    local: Case
    remote_run: object
    remote: Case
    metric: str
    local_value: float
    remote_value: float

    @property
    def ratio(self):
        return self.remote_value / self.local_value if self.local_value else None


def local_vs_remote(runs):
    """[LocalRemote] for every measured remote case of the runs whose local
    twin (same mechanism, mode, pattern, size and placement, peer on this
    host) was measured too, in any of the runs; in the order of the remote
    run's cases. Flagged, failed and skipped cases are left out."""
    local = {}
    for run in runs:
        for case in run.case_list():
            if not case.key.remote:
                local.setdefault(case.key, []).append((run, case))
    out = []
    for run in runs:
        for case in run.case_list():
            if not case.key.remote:
                continue
            fld, remote_value = case.figure()
            for local_run, twin in local.get(case.key.local_twin(), []):
                local_value = twin.value(fld)
                if remote_value is None or local_value is None:
                    continue
                out.append(LocalRemote(local_run, twin, run, case, fld, local_value,
                                       remote_value))
    return out


@dataclass(frozen=True)
class SyncAsync:
    """A mechanism's sync case and its async twin (same pattern, size,
    placement and where) in one run, with the async case's InFlight;
    left_out says why the pair is not shown ('' when it is): async latency
    pairs with sync only in a closed loop at window 1."""

    run: object
    sync: Case
    async_case: Case
    in_flight: InFlight
    left_out: str = ""

    @property
    def key(self):
        return self.sync.key

    @property
    def metric(self):
        return CV_METRICS.get(self.key.pattern, "p50_ns")

    @property
    def sync_value(self):
        return self.sync.value(self.metric)

    @property
    def async_value(self):
        return self.async_case.value(self.metric)

    @property
    def ratio(self):
        """async / sync of the headline figure, or None."""
        s, a = self.sync_value, self.async_value
        return a / s if s and a is not None else None

    def wait_label(self):
        """'sync blocks, async spins' when the two waited differently (the
        harness's choice, not the mechanism's); '' when they waited alike
        or a side does not say (version 1)."""
        s, a = self.sync.wait, self.async_case.wait
        if not s or not a or s == a:
            return ""
        return f"sync {WAIT_VERBS.get(s, s)}, async {WAIT_VERBS.get(a, a)}"

    def notes(self):
        """What else set a side's figure, e.g. 'async: limited by the
        harness's flow control (12% of the span)'; [] for most pairs."""
        out = []
        for side, case in (("sync", self.sync), ("async", self.async_case)):
            if case.harness_limited:
                out.append(f"{side}: limited by the harness's flow control "
                           f"({100 * case.flow_stall():.0f}% of the span)")
            if case.buffer_full:
                out.append(f"{side}: the mechanism's buffer was full most of the time "
                           f"({100 * case.channel_full():.0f}% of the span)")
            if case.sender_behind:
                out.append(f"{side}: the sender fell behind its schedule")
        return out


def sync_vs_async(runs):
    """[SyncAsync] of every measured async case whose sync twin was measured
    in the same run, in the order of the runs' cases; async latency not in
    a closed loop at window 1 (open loop, queueing) has left_out set."""
    out = []
    for run in runs:
        sync = {(c.key.mechanism, c.key.pattern, c.key.size, c.key.placement, c.key.where): c
                for c in run.case_list() if c.key.mode == "sync"}
        for case in run.case_list():
            k = case.key
            twin = sync.get((k.mechanism, k.pattern, k.size, k.placement, k.where))
            if k.mode != "async" or twin is None:
                continue
            flight = run.in_flight(case)
            why = flight.why_not_like_sync() if k.pattern == "latency" else ""
            out.append(SyncAsync(run, twin, case, flight, why))
    return out


def left_out_line(pairs):
    """One line: how many latency pairs were left out and why, naming each
    ('' when none was)."""
    left = [p for p in pairs if p.left_out]
    if not left:
        return ""
    multi = len({id(p.run) for p in left}) > 1
    places = len({p.key.placement for p in pairs}) > 1
    items = "; ".join(f"{p.run.label + ': ' if multi else ''}{p.key.series()} "
                      f"{units.size(p.key.size)}{' ' + p.key.placement if places else ''} "
                      f"({p.left_out})" for p in left)
    return (f"{len(left)} sync vs async latency pair(s) left out: the async round trip is "
            "comparable with the sync one only in a closed loop at window 1 (one message "
            f"at a time): {items}.")


def same_remote_host(a, b):
    """False only when both runs are remote runs and their remote hosts
    differ (host name or CPU model): figures against two different peers
    are not comparable."""
    if a.remote is None or b.remote is None:
        return True
    ha, hb = a.remote_host, b.remote_host
    return (ha.get("hostname") == hb.get("hostname")
            and ha.get("cpu_model") == hb.get("cpu_model"))


def finite(values):
    """Only the finite numbers of an iterable (plots and tests choke on None)."""
    return [v for v in values if units.is_number(v) and not math.isnan(v)]
