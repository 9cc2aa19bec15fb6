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

SUPPORTED_SCHEMA_VERSION = 1
SCHEMA_PATH = Path(__file__).resolve().parents[2] / "docs" / "result.schema.json"

# The order in which statistics of a case are read: the median is robust to
# one noisy repetition, which is what a reader comparing mechanisms wants.
REPRESENTATIVE_AGGREGATE = "median"

LATENCY_FIELDS = ("min_ns", "p50_ns", "p90_ns", "p99_ns", "p999_ns", "p9999_ns",
                  "max_ns", "mean_ns", "stddev_ns")
NUMERIC_FIELDS = (
    "iterations", "real_time", "cpu_time", "messages", "messages_lost",
    "bytes_per_second", "items_per_second", "runner_cpu_ns_per_msg",
    "peer_cpu_ns_per_msg", "runner_ctx_switches_per_msg", "peer_ctx_switches_per_msg",
    "samples", *LATENCY_FIELDS, "histogram_samples", "floor", "floor_ratio",
)


class InputError(Exception):
    """A file the tool refuses. str() is the single line the CLI prints, so
    a person sees which file and why without a traceback."""

    def __init__(self, path, reason):
        super().__init__(reason)
        self.path = str(path)
        self.reason = " ".join(str(reason).split())

    def __str__(self):
        return f"{self.path}: {self.reason}"


@dataclass(frozen=True, order=True)
class CaseKey:
    """The identity compare matches on: a case measured twice under the same
    key is the same experiment."""

    mechanism: str
    mode: str
    pattern: str
    size: int
    placement: str

    def label(self):
        """'pipe/sync/latency/64 B (cross-cpu)': the name people recognise
        from the suite's console output, with the size made readable."""
        return (f"{self.mechanism}/{self.mode}/{self.pattern}/{units.size(self.size)}"
                f" ({self.placement})")

    def loose(self):
        """The key without placement: failed and skipped cases record
        placement 'unknown', yet they are the same case as a measured one."""
        return (self.mechanism, self.mode, self.pattern, self.size)


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

    @property
    def status(self):
        """'failed' wins over 'skipped' wins over 'ok': one failed repetition
        makes the whole case untrustworthy."""
        if any(e.get("error_occurred") for e in self.entries):
            return "failed"
        if any(e.get("skipped") for e in self.entries):
            return "skipped"
        return "ok" if self.iterations else "failed"

    @property
    def message(self):
        """The failure or skip reason ('' for a measured case)."""
        for e in self.entries:
            if e.get("error_occurred"):
                return e.get("error_message", "")
        for e in self.entries:
            if e.get("skipped"):
                return e.get("skip_message", "")
        return "" if self.iterations else "no measured repetition"

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
        median of the iteration values when the file has no aggregates)."""
        entry = self._representative_entry()
        if entry is not None:
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

    def histogram(self):
        """[(percentile, value_ns)] of all repetitions merged (an aggregate
        entry carries the merged spectrum), else of the single repetition."""
        for entry in list(self.aggregates.values()) + self.iterations[:1]:
            hist = entry.get("histogram")
            if hist:
                return [(p["percentile"], p["value_ns"]) for p in hist]
        return []

    def cpu_ns_per_msg(self):
        """Runner plus peer CPU time per message: the whole cost of the IPC."""
        runner = self.value("runner_cpu_ns_per_msg")
        peer = self.value("peer_cpu_ns_per_msg")
        if runner is None or peer is None:
            return None
        return runner + peer


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
        """The calibration floors, when the suite measured them (a later
        schema adds them); None otherwise."""
        cal = self.meta.get("calibration")
        return cal if isinstance(cal, dict) and cal else None

    @property
    def date(self):
        return self.context.get("date", "")

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

    def latency_floor_ns(self, size):
        """The calibrated round-trip floor for a message size: the payload
        round trip measured at that size, else the cache-line round trip
        (a lower bound for every size)."""
        cal = self.calibration or {}
        per_size = cal.get("payload_rtt_ns")
        if isinstance(per_size, dict) and units.is_number(per_size.get(str(size))):
            return per_size[str(size)]
        v = cal.get("cache_line_rtt_ns")
        return v if units.is_number(v) else None

    def bandwidth_ceiling(self, size):
        """The calibrated memcpy bandwidth for a size, the ceiling no
        mechanism that copies the payload can beat; None when not measured."""
        per_size = (self.calibration or {}).get("memcpy_bytes_per_second")
        if isinstance(per_size, dict) and units.is_number(per_size.get(str(size))):
            return per_size[str(size)]
        return None

    def floor_ratio(self, case):
        """measured / floor for a case: the suite's own floor_ratio when the
        file carries one, else p50 over the calibrated latency floor."""
        v = case.value("floor_ratio")
        if v is not None:
            return v
        if case.key.pattern == "latency" and case.ok:
            floor, p50 = self.latency_floor_ns(case.key.size), case.value("p50_ns")
            if floor and p50 is not None:
                return p50 / floor
        return None


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


def _parse(path):
    """The file's JSON, strictly (NaN/Infinity refused, as the suite never
    writes them)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(path, f"cannot read: {e.strerror if isinstance(e, OSError) else e}")
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except ValueError as e:
        raise InputError(path, f"not valid JSON: {e}") from None


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
    error = best_match(_validator(schema_path).iter_errors(data))
    if error is None:
        return
    if error.validator == "not":
        detail = f"must not match {json.dumps(error.validator_value, sort_keys=True)}"
    else:
        detail = " ".join(error.message.split())
    if len(detail) > 200:
        detail = detail[:197] + "..."
    raise InputError(path, f"does not match the result schema at "
                           f"{_json_path(error.absolute_path)}: {detail}")


def _cases(data):
    """Groups the benchmark entries by case key, keeping file order."""
    cases = {}
    for entry in data["benchmarks"]:
        key = CaseKey(entry["mechanism"], entry["mode"], entry["pattern"],
                      int(entry["message_size"]), entry["placement"])
        cases.setdefault(key, Case(key)).entries.append(entry)
    return cases


def load(path, allow_incomplete=False, schema_path=SCHEMA_PATH):
    """Reads and validates one result file into a Run, or raises InputError.

    Checks run from the most to the least basic (readable, JSON, a suite
    result, a schema version we know, the schema, complete) so the one line
    reported is the most useful one."""
    path = Path(path)
    data = _parse(path)
    _check_shape(path, data)
    _check_schema(path, data, schema_path)
    if not data["ipcbench"]["complete"] and not allow_incomplete:
        raise InputError(path, "incomplete run ('complete': false: the run was interrupted); "
                               "rerun it, or pass --allow-incomplete")
    return Run(path=path, raw=data, cases=_cases(data))


def load_all(paths, allow_incomplete=False, schema_path=SCHEMA_PATH):
    """Loads several files and labels them so a reader can tell them apart."""
    runs = [load(p, allow_incomplete, schema_path) for p in paths]
    assign_labels(runs)
    return runs


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


def finite(values):
    """Only the finite numbers of an iterable (plots and tests choke on None)."""
    return [v for v in values if units.is_number(v) and not math.isnan(v)]
