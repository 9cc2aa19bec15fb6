"""Compare two result files case by case and decide whether the new one regressed.

A case regresses when a metric moved in the worse direction by more than the
threshold (the smallest effect worth flagging). With at least MIN_REPETITIONS
repetitions on both sides the move must also be statistically significant
(Mann-Whitney U, two-sided, as Google Benchmark's tools/compare.py does),
because a threshold alone flags noise on a busy machine; with fewer, the
threshold alone decides and the output says so.

Many figures are tested at once, so the significance level is for the whole
comparison, not for each figure: Holm's step-down correction over every
U-tested metric (with ~50 figures each tested at 0.05, identical code would
be flagged almost every time). For each tested metric the output also gives
the noise of each side (the spread of its repetitions) and the smallest
change the test could have detected with those samples; a metric that even
fully separated samples of this size could not make significant under the
correction is "cannot judge (too few samples)", and one whose detectable
change exceeds MAX_DETECTABLE_FACTOR x the threshold is "too noisy to
judge", never "unchanged".

A case the suite's sanity gate flagged as a measurement error (on either
side) is never judged: it is neither an improvement nor a regression, and it
is listed as flagged.

A local case (peer on this host) is never paired with a remote one (peer on
the remote host of 'ipcbench run --remote'): where a case was measured is
part of its key, also when failed cases are paired regardless of placement.

Like is compared with like: a case in both files is paired only when every
setting that changes what its figures mean is the same on both sides (the
key, and model.Run.settings: cpus, verify, engine, rate, window where it
applies, the async throughput in-flight limits). A case measured under
different settings is not compared: it is listed, one line per case, with
the settings that differ ('not compared: window 16 (base) vs 1 (new)'), and
counts neither as improved nor as regressed. The exit status reflects the
paired cases only; when cases are in both files but none could be paired,
the exit status is 2 (nothing was compared). Files whose schema versions
give real_time different meanings are refused before any of this
(model.check_comparable).
"""

import math
import statistics
from dataclasses import dataclass, field

from . import model, units

MIN_REPETITIONS = 5
DEFAULT_THRESHOLD = 5.0
DEFAULT_ALPHA = 0.05
# A metric whose smallest detectable change is beyond this many thresholds
# is reported as too noisy to judge rather than as unchanged.
MAX_DETECTABLE_FACTOR = 3.0
# The detectable change is searched up to this (a doubling, or a halving of
# a throughput, is always visible by eye).
MAX_DETECTABLE_PCT = 100.0

# pattern -> [(metric label, field, higher_is_worse, formatter)]
METRICS = {
    "latency": [("p50", "p50_ns", True, units.ns), ("p99", "p99_ns", True, units.ns)],
    "throughput": [("throughput", "bytes_per_second", False, units.bytes_per_second)],
}


def metrics_of(pattern):
    """The metrics compared for a case of pattern: a load sweep's peak by its
    echo rate, its unloaded figure and each step by their round trips."""
    if pattern == "load/peak":
        return [("peak echo rate", "achieved_rate", False, units.per_second)]
    if pattern.startswith("load/"):
        return METRICS["latency"]
    return METRICS.get(pattern, [])


@dataclass
class MetricChange:
    """One metric of one matched case, base against new."""

    case: str
    metric: str
    base: float
    new: float
    change_pct: float | None
    worse_pct: float | None
    p_value: float | None
    method: str
    verdict: str
    fmt: object = units.count
    n_base: int = 0
    n_new: int = 0
    # the spread of each side's repetitions, percent of its median (None: < 2)
    noise_base_pct: float | None = None
    noise_new_pct: float | None = None
    # the smallest worse-direction change (percent) the test could have
    # flagged with these samples at the corrected level; None when untested
    # or beyond MAX_DETECTABLE_PCT
    detectable_pct: float | None = None
    # the level this metric's p-value was held to after Holm's correction
    level: float | None = None
    higher_worse: bool = field(default=True, repr=False)
    samples: tuple = field(default=((), ()), repr=False)  # (base, new) per repetition

    def as_row(self):
        return {"case": self.case, "metric": self.metric, "worse_pct": self.worse_pct,
                "verdict": self.verdict}


# System calls per message: counted, not sampled, so compared without
# statistics. A change of this many calls per message or more, with the two
# sides' repetitions not overlapping, is a finding on any machine (a
# timing-dependent count, such as an async wait that finds data there or
# not, overlaps between repetitions and is not reported).
SYSCALL_CHANGE = 0.5
SYSCALL_FIELDS = (("runner", "runner_syscalls_per_msg"), ("peer", "peer_syscalls_per_msg"))
# Where the tracepoint did not count (containers, perf_event_paranoid), the
# calls of ipcbench's own code, counted where it makes them, stand in.
OWN_SYSCALL_FIELDS = {"runner": "runner_own_syscalls_per_msg",
                          "peer": "peer_own_syscalls_per_msg"}


@dataclass(frozen=True)
class SyscallChange:
    """One side's system calls per message, base against new."""

    case: str
    side: str  # runner or peer
    base: float
    new: float
    own_only: bool = False  # ipcbench's own calls (no tracepoint count)

    def text(self):
        what = "own system calls (ipcbench's code)" if self.own_only else "system calls"
        return (f"{self.case}: {self.side} {what} per message {self.base:.2f} -> "
                f"{self.new:.2f} ({self.new - self.base:+.2f})")


def syscall_changes(label, b, n):
    """The sides of a pair whose system calls per message moved by
    SYSCALL_CHANGE or more, the repetitions not overlapping; None when the
    pair has no counts on both sides."""
    out, counted = [], False
    for side, fld in SYSCALL_FIELDS:
        bs, ns_ = b.samples(fld), n.samples(fld)
        own_only = not bs or not ns_
        if own_only:
            bs, ns_ = b.samples(OWN_SYSCALL_FIELDS[side]), n.samples(OWN_SYSCALL_FIELDS[side])
        if not bs or not ns_:
            continue
        counted = True
        bm, nm = statistics.median(bs), statistics.median(ns_)
        apart = max(bs) < min(ns_) or max(ns_) < min(bs)
        if abs(nm - bm) >= SYSCALL_CHANGE and apart:
            out.append(SyscallChange(label, side, bm, nm, own_only))
    return out if counted else None


@dataclass(frozen=True)
class Mismatch:
    """A case in both files measured under different settings: not compared.
    differences is [(setting, base value, new value)] (model.setting_differences)."""

    case: str
    differences: tuple

    @property
    def settings(self):
        return [name for name, _b, _n in self.differences]

    def what(self):
        """'not compared: window 16 (base) vs 1 (new)'."""
        return "not compared: " + model.differences_text(self.differences)

    def text(self):
        """One line: 'pipe/async/latency/64 B (cross-cpu): not compared: window 16 (base) vs 1 (new)'."""
        return f"{self.case}: {self.what()}"


@dataclass
class Comparison:
    """Everything compare found, for the console, Markdown and HTML outputs."""

    base: object
    new: object
    threshold: float
    alpha: float
    changes: list = field(default_factory=list)
    # (case label, base status, new status, what changed)
    status_changes: list = field(default_factory=list)
    # (case label, base status, new status, "base: reason; new: reason")
    flagged: list = field(default_factory=list)
    only_base: list = field(default_factory=list)
    only_new: list = field(default_factory=list)
    # [Mismatch]: cases in both files under different settings
    mismatched: list = field(default_factory=list)
    # how many cases were paired (same key and same settings), whatever their status
    paired: int = 0
    warnings: list = field(default_factory=list)
    notes: list = field(default_factory=list)
    # [SyscallChange]: counted figures that moved by a call per message or more
    syscall_changes: list = field(default_factory=list)
    # how many paired cases carried system call counts on both sides
    syscalls_compared: int = 0

    def case_verdicts(self):
        """{case label: verdict}; a case's worst metric decides."""
        out = {}
        rank = {"regressed": 3, "improved": 2, "cannot judge": 1, "unchanged": 0}
        for ch in self.changes:
            v = ("cannot judge" if ch.verdict in ("too noisy", "too few samples")
                 else ch.verdict if ch.verdict in rank else "unchanged")
            prev = out.get(ch.case, "unchanged")
            out[ch.case] = v if rank[v] > rank[prev] else prev
        for label, _b, _n, verdict in self.status_changes:
            if verdict == "now fails":
                out[label] = "regressed"
        return out

    @property
    def regressed(self):
        return sorted(c for c, v in self.case_verdicts().items() if v == "regressed")

    @property
    def improved(self):
        return sorted(c for c, v in self.case_verdicts().items() if v == "improved")

    @property
    def cannot_judge(self):
        """Cases some metric of which was too noisy, or had too few samples,
        to judge (and none regressed or improved)."""
        return sorted(c for c, v in self.case_verdicts().items() if v == "cannot judge")

    def threshold_only_cases(self):
        return sorted({ch.case for ch in self.changes if ch.method == "threshold"})

    def tested_cases(self):
        return sorted({ch.case for ch in self.changes if ch.method == "U test"})

    @property
    def nothing_paired(self):
        """True when cases are in both files but none under the same settings:
        compare judged nothing, which must not pass as 'no regression'."""
        return bool(self.mismatched) and self.paired == 0

    def mismatched_settings(self):
        """The settings that differ, over every mismatched case, in SETTINGS order."""
        names = {name for m in self.mismatched for name in m.settings}
        return [n for n in model.SETTINGS if n in names]

    @property
    def exit_code(self):
        """0 no regression among the paired cases; 1 a paired case regressed;
        2 nothing could be paired (every case in both files differs in a
        setting). Mismatched cases never change 0 into 1."""
        if self.nothing_paired:
            return 2
        return 1 if self.regressed else 0


def match_cases(base, new):
    """Pairs of (base case, new case) with the same key, and the leftovers.

    Failed and skipped entries record placement 'unknown'; such a case is
    paired with the other side's case that differs only in placement, so a
    case that now fails is reported as failing rather than as two unrelated
    cases. Local and remote cases never pair (the key's where)."""
    pairs = [(base.cases[k], new.cases[k]) for k in base.cases if k in new.cases]
    left_b = [c for k, c in base.cases.items() if k not in new.cases]
    left_n = [c for k, c in new.cases.items() if k not in base.cases]
    for b in list(left_b):
        cands = [n for n in left_n if n.key.loose() == b.key.loose()
                 and "unknown" in (n.key.placement, b.key.placement)]
        if len(cands) == 1:
            pairs.append((b, cands[0]))
            left_b.remove(b)
            left_n.remove(cands[0])
    return pairs, left_b, left_n


def significance(base_samples, new_samples):
    """Two-sided Mann-Whitney U p-value, or None when it cannot be computed
    (identical samples give no evidence of a change either way). The exact
    distribution for small samples (the normal approximation understates how
    small p can get: 10 vs 10 fully separated samples are p 1.1e-5 exactly,
    1.8e-4 approximated, too weak for Holm's level over ~50 metrics), ties
    included: percentiles come from histogram buckets, so equal values are
    common, and the exact distribution, which ignores ties, is then slightly
    conservative."""
    from scipy.stats import mannwhitneyu
    pooled = list(base_samples) + list(new_samples)
    if len(set(pooled)) < 2:
        return 1.0
    exact = max(len(base_samples), len(new_samples)) <= 50
    p = float(mannwhitneyu(base_samples, new_samples, alternative="two-sided",
                           method="exact" if exact else "asymptotic").pvalue)
    return None if math.isnan(p) else p


def smallest_p(n_base, n_new):
    """The smallest p-value samples of these sizes can give (fully separated)."""
    return significance(list(range(n_base)), list(range(n_base, n_base + n_new)))


def noise_pct(samples):
    """The spread of a side's repetitions, percent of their median: the
    median absolute deviation scaled to a standard deviation (robust to the
    odd outlier a shared machine produces). None for fewer than 2."""
    if len(samples) < 2:
        return None
    med = statistics.median(samples)
    if not med:
        return None
    mad = statistics.median(abs(x - med) for x in samples)
    return 1.4826 * mad / abs(med) * 100.0


def detectable_change(base_samples, new_samples, higher_worse, level):
    """The smallest worse-direction change (percent) that the U test would
    call significant at `level` with samples spread like these: the new
    samples are moved onto the base median, then shifted further until the
    test rejects. None when not even MAX_DETECTABLE_PCT is enough."""
    mb, mn = statistics.median(base_samples), statistics.median(new_samples)
    if not mb or not mn:
        return None
    centred = [x * mb / mn for x in new_samples]

    def rejects(pct):
        factor = 1 + pct / 100.0 if higher_worse else 1 - pct / 100.0
        p = significance(base_samples, [x * factor for x in centred])
        return p is not None and p <= level

    if not rejects(MAX_DETECTABLE_PCT):
        return None
    lo, hi = 0.0, MAX_DETECTABLE_PCT
    while hi - lo > 0.25:  # the p-value only falls as the shift grows
        mid = (lo + hi) / 2
        lo, hi = (lo, mid) if rejects(mid) else (mid, hi)
    return hi


def compare_metric(label, b, n, metric, threshold, alpha):
    """The change of one metric, its p-value and noise. The verdict is left
    to decide(), once every metric's p-value is known (Holm's correction
    needs them all)."""
    name, fld, higher_worse, fmt = metric
    bv, nv = b.value(fld), n.value(fld)
    if bv is None or nv is None:
        return None
    change = (nv - bv) / bv * 100.0 if bv else None
    worse = None if change is None else (change if higher_worse else -change)
    bs, ns_ = b.samples(fld), n.samples(fld)
    p_value, method = None, "threshold"
    if len(bs) >= MIN_REPETITIONS and len(ns_) >= MIN_REPETITIONS:
        method = "U test"
        p_value = significance(bs, ns_)
    return MetricChange(label, name, bv, nv, change, worse, p_value, method, "unchanged", fmt,
                        len(bs), len(ns_), noise_pct(bs), noise_pct(ns_),
                        higher_worse=higher_worse, samples=(bs, ns_))


def holm_levels(changes, alpha):
    """Holm's step-down procedure over the U-tested metrics: sets each one's
    level (alpha / (m - rank)) and returns the set of ids of those it
    rejects (in p order, until the first that misses its level)."""
    tested = sorted((c for c in changes if c.method == "U test"),
                    key=lambda c: 1.0 if c.p_value is None else c.p_value)
    m = len(tested)
    rejected, going = set(), True
    for rank, c in enumerate(tested):
        c.level = alpha / (m - rank)
        if going and c.p_value is not None and c.p_value <= c.level:
            rejected.add(id(c))
        else:
            going = False
    return rejected


def decide(changes, threshold, alpha):
    """Every metric's verdict, the whole comparison at once."""
    rejected = holm_levels(changes, alpha)
    m = sum(1 for c in changes if c.method == "U test")
    for c in changes:
        worse = c.worse_pct
        if c.method == "threshold":
            if worse is not None and worse > threshold:
                c.verdict = "regressed"
            elif worse is not None and worse < -threshold:
                c.verdict = "improved"
            continue
        # The level a change in this metric alone would face: the first step.
        first = alpha / m
        c.detectable_pct = detectable_change(*c.samples, c.higher_worse, first)
        if c.detectable_pct is not None:
            c.detectable_pct = max(c.detectable_pct, threshold)
        significant = id(c) in rejected
        if worse is not None and significant and worse > threshold:
            c.verdict = "regressed"
        elif worse is not None and significant and worse < -threshold:
            c.verdict = "improved"
        elif smallest_p(c.n_base, c.n_new) > first:
            c.verdict = "too few samples"
        elif c.detectable_pct is None or c.detectable_pct > MAX_DETECTABLE_FACTOR * threshold:
            c.verdict = "too noisy"
        elif worse is not None and abs(worse) > threshold:
            c.verdict = "noise"
        else:
            c.verdict = "unchanged"


def status_change(b, n):
    """What changed for a pair that is not measured on both sides."""
    if b.ok and not n.ok:
        return "now fails" if n.status == "failed" else f"now {n.status}"
    if not b.ok and n.ok:
        return "now measured"
    if b.status == n.status:
        return f"{b.status} on both sides"
    return "not comparable"


def flagged_reasons(b, n):
    """'new: round trip below the cache-line floor' (each flagged side's reason)."""
    return "; ".join(f"{side}: {c.message}" for side, c in (("base", b), ("new", n))
                     if c.flagged)


def flagged_text(item):
    """One flagged pair as a line of text (no Markdown)."""
    label, _b, _n, reasons = item
    return f"{label}: flagged as a measurement error, not compared ({reasons})"


def compare_runs(base, new, threshold=DEFAULT_THRESHOLD, alpha=DEFAULT_ALPHA):
    """Compares every matched case; never raises for data reasons."""
    result = Comparison(base, new, threshold, alpha)
    pairs, result.only_base, result.only_new = match_cases(base, new)
    wb, wn = set(base.wheres()), set(new.wheres())
    if wb and wn and not wb & wn:
        result.notes.append(f"base has only {_where_text(wb)} results, new only "
                            f"{_where_text(wn)} ones: a local case is never compared with "
                            "one measured across hosts")
    elif not pairs and (result.only_base or result.only_new):
        result.notes.append("no case is in both files (different mechanisms, sizes, modes "
                            "or placements?): nothing was compared")
    for b, n in pairs:
        label = b.key.label() if b.ok else n.key.label()
        differences = model.setting_differences(base, b, new, n)
        if differences:
            result.mismatched.append(Mismatch(label, tuple(differences)))
            continue
        result.paired += 1
        if b.flagged or n.flagged:
            label = b.key.label() if b.flagged else n.key.label()
            result.flagged.append((label, b.status, n.status, flagged_reasons(b, n)))
            continue
        if not (b.ok and n.ok):
            result.status_changes.append((label, b.status, n.status, status_change(b, n)))
            continue
        for metric in metrics_of(b.key.pattern):
            ch = compare_metric(label, b, n, metric, threshold, alpha)
            if ch is not None:
                result.changes.append(ch)
        moved = syscall_changes(label, b, n)
        if moved is not None:
            result.syscalls_compared += 1
            result.syscall_changes += moved
    decide(result.changes, threshold, alpha)
    return result


def _where_text(wheres):
    return " and ".join("across-hosts (remote)" if w == "remote" else w for w in sorted(wheres))


def verdict_text(v):
    return {"regressed": "REGRESSED", "improved": "improved",
            "noise": "unchanged (not significant)", "unchanged": "unchanged",
            "too noisy": "too noisy to judge",
            "too few samples": "cannot judge (too few samples)"}.get(v, v)


def noise_text(ch):
    """'±3.1% / ±4.0%' (base / new), '–' when a side has too few samples."""
    if ch.noise_base_pct is None and ch.noise_new_pct is None:
        return "–"
    f = lambda v: "–" if v is None else f"±{v:.1f}%"
    return f"{f(ch.noise_base_pct)} / {f(ch.noise_new_pct)}"


def detectable_text(ch):
    """'7.5%', '>100%' (nothing up to a doubling would show), '–' untested."""
    if ch.method != "U test":
        return "–"
    return f">{MAX_DETECTABLE_PCT:g}%" if ch.detectable_pct is None else f"{ch.detectable_pct:.1f}%"


def p_text(p):
    return "–" if p is None else (f"{p:.4f}" if p >= 0.0001 else "<0.0001")


def method_lines(result):
    """How the verdicts were reached, in words, for every output."""
    tested, thr = result.tested_cases(), result.threshold_only_cases()
    lines = [f"Threshold {result.threshold:g}% in the worse direction "
             "(latency up, throughput down)."]
    if tested:
        m = sum(1 for c in result.changes if c.method == "U test")
        lines.append(f"{len(tested)} case(s) with >= {MIN_REPETITIONS} repetitions on both sides: "
                     f"Mann-Whitney U test (two-sided) on the per-repetition values, "
                     f"{m} metrics held together to alpha {result.alpha:g} (Holm's correction: "
                     f"the smallest p-value must be below {result.alpha / m:.2g}); a case "
                     "regresses only when the change is significant AND beyond the threshold.")
        lines.append("noise: each side's spread over its repetitions (robust standard "
                     "deviation, % of the median); detectable: the smallest worse-direction "
                     "change this test could have flagged with such samples (a case whose "
                     f"detectable change is above {MAX_DETECTABLE_FACTOR:g}x the threshold is "
                     "reported as too noisy to judge).")
    if thr:
        lines.append(f"{len(thr)} case(s) with fewer than {MIN_REPETITIONS} repetitions on a side: "
                     "threshold only, no significance test (run with --repetitions "
                     f"{MIN_REPETITIONS} or more for one).")
    return lines


def summary_line(result):
    verdicts = result.case_verdicts()
    compared = len({ch.case for ch in result.changes})
    unchanged = sum(1 for v in verdicts.values() if v == "unchanged")
    flagged = (f"; {len(result.flagged)} flagged as measurement errors (not compared)"
               if result.flagged else "")
    mismatched = (f"; {len(result.mismatched)} not compared (measured under different "
                  f"settings: {', '.join(result.mismatched_settings())})"
                  if result.mismatched else "")
    judge = (f", {len(result.cannot_judge)} too noisy or too few samples to judge"
             if result.cannot_judge else "")
    return (f"{compared} case(s) compared: {len(result.regressed)} regressed, "
            f"{len(result.improved)} improved, {unchanged} unchanged{judge}; "
            f"{len(result.only_base)} only in base, {len(result.only_new)} only in new"
            f"{flagged}{mismatched}.")


def nothing_paired_line(result):
    """Why compare judged nothing (exit 2), as one line."""
    return (f"nothing compared: all {len(result.mismatched)} case(s) in both files were "
            f"measured under different settings ({', '.join(result.mismatched_settings())}); "
            "rerun one side with the other's settings")


def syscall_lines(result):
    """The system call section, one line each: counted figures, no statistics.
    Reported, not part of the exit status."""
    if not result.syscalls_compared:
        return ["System calls per message: not counted on both sides (see each file's "
                "ipcbench.syscalls note)."]
    head = (f"System calls per message (counted, not sampled; {result.syscalls_compared} "
            f"case(s) with counts on both sides; a change of {SYSCALL_CHANGE:g} or more "
            "with the repetitions apart is listed):")
    if not result.syscall_changes:
        return [head, "  no change."]
    return [head] + [f"  {c.text()}" for c in result.syscall_changes]


def result_line(result):
    if result.nothing_paired:
        return "Result: " + nothing_paired_line(result) + "."
    if result.regressed:
        return "Result: REGRESSION: " + ", ".join(result.regressed)
    return "Result: no regression."


def remote_text(run):
    """'; peer across hosts: serve-b (198.18.0.1:7070), AMD EPYC ...' for a
    remote run, '' for a local one."""
    if run.remote is None:
        return ""
    cpu = run.remote_host.get("cpu_model")
    return f"; peer across hosts: {run.remote_host_label()}" + (f", {cpu}" if cpu else "")


def run_line(run):
    h = run.host
    return (f"{run.path} ({h.get('hostname')}, {h.get('cpu_model')}, "
            f"git {run.meta.get('git_revision')}, {run.config.get('repetitions')} repetition(s)"
            f"{remote_text(run)})")


def render_console(result):
    """The console table: one line per compared metric, then the verdict."""
    out = [f"base: {run_line(result.base)}", f"new:  {run_line(result.new)}"]
    out += [f"WARNING: {w}" for w in result.warnings + result.notes]
    out += method_lines(result)
    header = ("case", "metric", "base", "new", "change", "p-value", "noise", "detectable",
              "method", "verdict")
    rows = [(ch.case, ch.metric, ch.fmt(ch.base), ch.fmt(ch.new),
             units.percent_change(ch.change_pct), p_text(ch.p_value), noise_text(ch),
             detectable_text(ch), ch.method, verdict_text(ch.verdict)) for ch in result.changes]
    widths = [max(len(str(r[i])) for r in [header] + rows) for i in range(len(header))]
    out.append("")
    for r in [header] + rows:
        out.append("  ".join(str(c).ljust(w) if i < 2 or i > 7 else str(c).rjust(w)
                             for i, (c, w) in enumerate(zip(r, widths))).rstrip())
    for label, _bs, _ns, note in result.status_changes:
        out.append(f"{label}: {note}" + (" (REGRESSED)" if note == "now fails" else ""))
    for item in result.flagged:
        out.append(flagged_text(item))
    for m in result.mismatched:
        out.append(m.text())
    for title, cases in (("only in base", result.only_base), ("only in new", result.only_new)):
        for c in cases:
            out.append(f"{c.key.label()}: {title} ({c.status})")
    out += ["", *syscall_lines(result)]
    out += ["", summary_line(result), result_line(result)]
    return "\n".join(out) + "\n"


def render_markdown(result):
    """The diff as Markdown, for a PR comment or a job summary."""
    head = "## ipcbench compare: " + ("**nothing compared** (different settings)"
                                      if result.nothing_paired
                                      else "**regression**" if result.regressed
                                      else "no regression")
    out = [head, "", f"- base: `{result.base.path.name}`: {_ctx(result.base)}",
           f"- new: `{result.new.path.name}`: {_ctx(result.new)}"]
    out += [f"\n> **Warning:** {w}" for w in result.warnings + result.notes]
    out += ["", *method_lines(result), "",
            "| case | metric | base | new | change | p-value | noise | detectable | verdict |",
            "|---|---|--:|--:|--:|--:|--:|--:|---|"]
    for ch in result.changes:
        v = verdict_text(ch.verdict)
        v = f"**{v}**" if ch.verdict in ("regressed", "improved") else v
        out.append(f"| `{ch.case}` | {ch.metric} | {ch.fmt(ch.base)} | {ch.fmt(ch.new)} | "
                   f"{units.percent_change(ch.change_pct)} | {p_text(ch.p_value)} | "
                   f"{noise_text(ch)} | {detectable_text(ch)} | {v} |")
    extra = [f"- `{label}`: **{note}**" for label, _b, _n, note in result.status_changes]
    extra += [f"- `{label}`: **flagged as a measurement error** ({reasons})"
              for label, _b, _n, reasons in result.flagged]
    extra += [f"- `{m.case}`: **{m.what()}**" for m in result.mismatched]
    extra += [f"- `{c.key.label()}`: only in base ({c.status})" for c in result.only_base]
    extra += [f"- `{c.key.label()}`: only in new ({c.status})" for c in result.only_new]
    if extra:
        out += ["", "Not compared:", *extra]
    out += ["", f"### {syscall_lines(result)[0]}", ""]
    if result.syscall_changes:
        out += [f"- `{c.case}`: {c.side} {c.base:.2f} → {c.new:.2f} ({c.new - c.base:+.2f})"
                for c in result.syscall_changes]
    elif result.syscalls_compared:
        out.append("No change.")
    out += ["", summary_line(result)]
    if result.nothing_paired:
        out += ["", f"**{nothing_paired_line(result)}.**"]
    return "\n".join(out) + "\n"


def _ctx(run):
    h = run.host
    return (f"{h.get('hostname')}, {h.get('cpu_model')}, git {run.meta.get('git_revision')}, "
            f"{run.config.get('repetitions')} repetition(s){remote_text(run)}")
