"""The Markdown summary (summary.md): the standings in a form that fits a CI
job summary or a PR comment, one table per question.

- "Round trip (p50) by message size" and "Throughput by message size": the
  rows of ranking.grid at the summary's sizes (at most four), best first
  (the geometric mean of each row's ratio to the best over the sizes it was
  measured at), each with its rank and, per size, the
  figure and its ratio to the best ('55.0 µs ×1.12'; the best in bold).
  Only figures that answer the question are ranked: an async latency case
  that is not one message at a time (window over 1, open loop) is named once
  under the round-trip table with the reason, never ranked. The paragraph
  under each table says what the figure is, how the rows are ordered and
  what its markers mean: ⚠ unstable, † sender behind its schedule, ‡ the
  harness's flow control (model.LIMITS), '(remote)' measured across hosts,
  'flagged' a measurement error.
- With calibration, each row's ratios to its floor, in a collapsed
  <details> block.
- "Sync vs async" (model.sync_vs_async): one row per mechanism and figure,
  sync → async (async / sync) at each size, only where the two mean the
  same thing, in a collapsed block; "Local vs across hosts" when the inputs
  hold a local and a remote result of a case.
- Failed, skipped and flagged cases last: each reason once, with the cases
  it covers grouped by mechanism, then modes, patterns and sizes.
"""

import re

from . import model, ranking, units

DEFAULT_SIZES = (64, 1024, 16384, 262144)
MAX_SIZES = 4
UNSTABLE_MARK = "⚠"
FLAGGED_CELL = "flagged"
HEADINGS = {"latency": "Round trip (p50) by message size",
            "throughput": "Throughput by message size"}
FLOOR_SUMMARY = "Against the calibration floor"


def summary_sizes(runs):
    """The sizes the tables show: all measured sizes when there are few,
    else the suite's default sizes among them."""
    present = sorted({c.key.size for r in runs for c in r.case_list()})
    if len(present) <= MAX_SIZES:
        return present
    defaults = [s for s in DEFAULT_SIZES if s in present]
    return defaults or present[:MAX_SIZES]


class Row(tuple):
    """(run, mechanism, mode, placement) of a floor-table row, and where its
    cases were measured ('local', or 'remote': across hosts)."""

    def __new__(cls, run, mech, mode, place, where=model.LOCAL):
        row = super().__new__(cls, (run, mech, mode, place))
        row.where = where
        return row


def row_keys(runs):
    """(run, mechanism, mode, placement) for every row, in registry order,
    each mechanism's across-hosts row after its local one."""
    rows = []
    for run in runs:
        for mech in run.mechanisms():
            for where in (model.LOCAL, model.REMOTE):
                for mode in run.modes():
                    for place in run.placements() or ["unknown"]:
                        if any(c.key.mechanism == mech and c.key.mode == mode
                               and c.key.placement == place and c.key.where == where
                               for c in run.case_list()):
                            rows.append(Row(run, mech, mode, place, where))
    return rows


def _find(run, mech, mode, place, pattern, size, status="ok", where=model.LOCAL):
    for c in run.case_list(pattern, status):
        k = c.key
        if (k.mechanism, k.mode, k.placement, k.size, k.where) == (mech, mode, place, size,
                                                                     where):
            return c
    return None


def has_floors(runs):
    """True when some tabulated case has a floor ratio (file or calibration)."""
    return any(r.floor_ratio(c) is not None for r in runs for c in r.case_list())


def mechanism_name(mech, where=model.LOCAL, engine=model.DEFAULT_ENGINE):
    """'`tcp`', '`tcp` (remote)' across hosts, '`tcp` (io_uring)' on an
    engine that is not the default."""
    return (f"`{mech}`" + (" (remote)" if where == model.REMOTE else "")
            + (f" ({engine})" if engine != model.DEFAULT_ENGINE else ""))


def row_label(mech, mode, place, runs, where=model.LOCAL, engine=model.DEFAULT_ENGINE):
    """The mechanism (mechanism_name), plus mode and placement when they
    vary across the runs."""
    parts = [mechanism_name(mech, where, engine)]
    if len({m for r in runs for m in r.modes()}) > 1:
        parts.append(mode)
    if len({p for r in runs for p in r.placements()}) > 1:
        parts.append(place)
    return " ".join(parts)


def _line(cells):
    return "| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |"


def _align(head, right):
    return "|" + "|".join("--:" if h in right else "---" for h in head) + "|"


def _sizes_text(sizes):
    return ", ".join(units.size(s) for s in sorted(set(sizes)))


# --- one table per question ---------------------------------------------------

def limit_marks(case, pattern):
    """The markers (model.LIMITS) of what besides the mechanism set a
    figure: † (sender behind) on latency, ‡ (harness flow control) on
    throughput."""
    return "".join(lim.mark for lim in case.limits() if lim.mark
                   and (lim.name == "sender_behind") == (pattern == "latency"))


def ranked_text(pattern, entry, best):
    """A ranked cell: the figure, bold when best, else with its ratio to the
    best ('55.0 µs ×1.12'), then the unstable and limit markers."""
    text = ranking.value_text(pattern, entry.value)
    if best:
        text = f"**{text}**"
    elif entry.ratio > 1.0 + 1e-9:
        text += " " + ranking.ratio_text(entry.ratio)
    if entry.unstable:
        text += f" {UNSTABLE_MARK}"
    marks = limit_marks(entry.case, pattern)
    return f"{text} {marks}" if marks else text


def ranking_table(runs, pattern, sizes):
    """(head, body, [GridRow]) of one question's table at the sizes: the rows of
    ranking.grid in its order, ranked 1..n; per size (those of sizes where
    something is ranked) the ranked figure, 'flagged' where the case is a
    measurement error, '–' where there is no ranked figure. ([], [], [])
    when nothing is ranked."""
    answered = set(ranking.sizes(runs, pattern))
    at, rows = ranking.grid(runs, pattern, [s for s in sizes if s in answered])
    if not rows:
        return [], [], []
    ranked_at = {s: sum(s in r.cells for r in rows) for s in at}
    flagged = {(model.series_key(r, c), c.key.size) for r in runs
               for c in r.case_list(pattern, "flagged")}
    multi = len(runs) > 1
    head = ["#"] + (["host"] if multi else []) + ["mechanism"] + [units.size(s) for s in at]
    body = []
    for rank, row in enumerate(rows, 1):
        s = row.series
        cells = [str(rank)] + ([s.run_label] if multi else []) + [
            row_label(s.mechanism, s.mode, s.placement, runs, s.where, s.engine)]
        for size in at:
            e = row.cells.get(size)
            if e is not None:
                cells.append(ranked_text(pattern, e, ranked_at[size] > 1
                                         and e.ratio <= 1.0 + 1e-9))
            else:
                cells.append(FLAGGED_CELL if (s, size) in flagged else "–")
        body.append(cells)
    return head, body, rows


def not_ranked(runs, sizes):
    """The async latency cases at the sizes that are not one message at a
    time (ranking.left_out), one item per row and reason: '`tcp` async at
    64 B, 16 KiB (window 16: includes queueing)', with † when the sender
    fell behind its schedule."""
    groups = {}
    for run, case in ranking.left_out(runs, "latency"):
        k = case.key
        if k.size not in sizes:
            continue
        why = run.in_flight(case).why_not_like_sync() or "not one message at a time"
        name = ((f"{run.label}: " if len(runs) > 1 else "")
                + row_label(k.mechanism, k.mode, k.placement, runs, k.where, k.engine))
        groups.setdefault((name, why, limit_marks(case, "latency")), []).append(k.size)
    return [f"{name} at {_sizes_text(sz)} ({why})" + (f" {marks}" if marks else "")
            for (name, why, marks), sz in groups.items()]


ORDER_TEXT = ("Rows: best first by the geometric mean of that ratio over the sizes the row "
              "was measured at (– : not measured at that size).")
UNSTABLE_TEXT = f"{UNSTABLE_MARK}: unstable (cv across repetitions over 5%)."
REMOTE_TEXT = "(remote): measured across hosts (the peer on the remote host)."


def _markers(cells, labels, explained):
    """The legend sentences of the markers in a table's cells and row
    labels that no paragraph above explained (explained is updated)."""
    out = []

    def explain(name, present, sentence):
        if present and name not in explained:
            explained.add(name)
            out.append(sentence)
    explain("missing", any(c == "–" for c in cells), "–: no ranked figure at that size.")
    explain("flagged", FLAGGED_CELL in cells,
            f"{FLAGGED_CELL}: a measurement error (listed at the end), not a result.")
    explain("unstable", any(UNSTABLE_MARK in c for c in cells), UNSTABLE_TEXT)
    for name, lim in model.LIMITS.items():
        if lim.mark:
            explain(name, any(lim.mark in c for c in cells), lim.legend)
    explain("remote", any("(remote)" in lbl for lbl in labels), REMOTE_TEXT)
    return out


def question_lines(runs, pattern, sizes, explained):
    """The section of one question: heading, table and the paragraph under
    it (what the figure is, how the rows are ordered, the markers shown;
    latency: which async cases are not ranked and why, and what closed- and
    open-loop async latency are). [] when the runs have nothing to rank or
    leave out for the question."""
    head, body, rows = ranking_table(runs, pattern, sizes)
    left = not_ranked(runs, sizes) if pattern == "latency" else []
    if not body and not left:
        return []
    at = head.index("mechanism") + 1 if head else 0
    labels = [row[at - 1] for row in body]
    cells = [c for row in body for c in row[at:]]
    if pattern == "latency":
        text = "p50 round-trip latency of the latency pattern (ping-pong), one message at a time"
        if any(r.series.mode == "async" for r in rows):
            text += " (async: a closed loop at window 1)"
        text += "; ×N: N times the best at that size (the best in **bold**)."
    else:
        text = ("Payload bytes per second of the throughput pattern (decimal units); ×N: the "
                "best at that size moved N times as many bytes (the best in **bold**).")
    parts = [text, ORDER_TEXT] if body else ["No figure at these sizes is ranked."]
    if left:
        parts.append(f"Not ranked, not one message at a time: {'; '.join(left)}.")
        cells += ["†"] if any(i.endswith("†") for i in left) else []
    parts += _markers(cells, labels, explained)
    if pattern == "latency" and any(c.key.mode == "async" for r in runs
                                    for c in r.case_list("latency")):
        parts.append(model.CLOSED_LOOP_TEXT)
        if any(r.in_flight(c).loop == "open" for r in runs for c in r.case_list("latency")):
            parts.append(model.OPEN_LOOP_TEXT)
    table = ([_line(head), _align(head, {"#", *head[at:]}), *map(_line, body), ""] if body
             else [])
    return [f"### {HEADINGS[pattern]}", "", *table, " ".join(parts)]


# --- against the calibration floor ------------------------------------------------

FLOOR_TEXT = ("Per size: the latency case's p50 / its floor, then the floor's bandwidth / "
              "the throughput case's figure (1× is at the floor); – where none applies.")
FLOOR_REMOTE_TEXT = ("No floor applies across hosts: the calibration's floors describe this "
                     "host only.")


def floor_cell(run, mech, mode, place, size, where=model.LOCAL):
    """'3.1× / 1.4×': the latency case's p50 / floor, then the floor /
    throughput of the throughput case, at one size; '–' where none (always
    across hosts: the calibration's floors describe this host only)."""
    parts = []
    for pattern in ("latency", "throughput"):
        case = _find(run, mech, mode, place, pattern, size, where=where)
        ratio = run.floor_ratio(case) if case else None
        parts.append(units.ratio(ratio) if ratio is not None else "–")
    return "–" if parts == ["–", "–"] else " / ".join(parts)


def floor_lines(runs, sizes):
    """A collapsed <details> block with each row's ratios to its floor at
    the sizes (registry order, rows without any floor left out); [] when
    no case has a floor."""
    if not has_floors(runs):
        return []
    multi = len(runs) > 1
    rows = []
    for row in row_keys(runs):
        run, mech, mode, place = row
        cells = [floor_cell(run, mech, mode, place, s, row.where) for s in sizes]
        if any(c != "–" for c in cells):
            rows.append(([run.label] if multi else [])
                        + [row_label(mech, mode, place, runs, row.where)] + cells)
    if not rows:
        return []
    head = (["host"] if multi else []) + ["mechanism"] + [units.size(s) for s in sizes]
    text = FLOOR_TEXT + (f" {FLOOR_REMOTE_TEXT}" if any(r.has_remote_cases() for r in runs)
                         else "")
    return [f"<details><summary>{FLOOR_SUMMARY}</summary>", "", _line(head),
            _align(head, set(head[-len(sizes):])), *map(_line, rows), "", text, "",
            "</details>"]


# --- context ------------------------------------------------------------------

def context_lines(runs):
    """One line per file: where and what was run; under it the calibration,
    a remote run's peer and why its async cases have no one-way figures."""
    out = []
    for run in runs:
        h, cfg = run.host, run.config
        reps = cfg.get("repetitions", 1)
        out.append(
            f"- **{run.label}**: {h.get('cpu_model')}, {h.get('cpus_online')} CPUs, "
            f"{h.get('kernel')}{', ' + h['hypervisor'] if h.get('hypervisor') else ''}; "
            f"ipcbench {run.meta.get('suite_version')} ({run.meta.get('git_revision')}), "
            f"{run.date or 'date unknown'}; {', '.join(run.placements()) or 'no placement'} "
            f"(CPUs {','.join(str(c) for c in cfg.get('cpus', []))}); "
            f"min time {cfg.get('min_time_s')} s"
            f"{f', median of {reps} repetitions' if reps > 1 else ''}"
            f"{'; **incomplete run**' if not run.complete else ''}")
        cal = calibration_line(run)
        if cal:
            out.append(f"  - {cal}")
        remote = remote_line(run)
        if remote:
            out.append(f"  - {remote}")
        for note in oneway_notes(run):
            out.append(f"  - one-way latency of the async cases across hosts: {note}")
    return out


def remote_line(run):
    """A remote run's peer side: the serve host next to the local one."""
    if run.remote is None:
        return ""
    h = run.remote_host
    if not h:
        return (f"across hosts: peer at {run.remote_address} (`ipcbench serve`), host unknown: "
                "the run never got serve's answer")
    cpus = ",".join(str(c) for c in run.remote_cpus) or "unpinned"
    return (f"across hosts: peer on **{h.get('hostname') or 'the remote host'}** "
            f"(`ipcbench serve` at {run.remote_address}): {h.get('cpu_model')}, "
            f"{h.get('cpus_online')} CPUs, {h.get('kernel')}"
            f"{', ' + h['hypervisor'] if h.get('hypervisor') else ''}; serve's CPUs {cpus}; "
            "no floors, no one-way latency")


def oneway_notes(run):
    """Why the run's across-hosts async latency cases have no one-way
    figures, each reason once."""
    notes = []
    for c in run.case_list("latency"):
        if c.key.remote and c.key.mode == "async" and c.oneway("oneway_p50_ns") is None:
            note = c.oneway_note or "not reported across hosts"
            if note not in notes:
                notes.append(note)
    return notes


def calibration_line(run):
    """The harness's own cost and the calibration's state, one line."""
    if run.calibration:
        parts = []
        if run.harness_ns is not None:
            parts.append(f"harness cost {units.ns(run.harness_ns)} per round trip")
        if run.clock_read_ns is not None:
            parts.append(f"clock read {units.ns(run.clock_read_ns)}")
        for place in run.calibration_placements():
            rtt = run.calibrated(place, "cache_line_rtt_ns")
            futex = run.calibrated(place, "futex_rtt_ns")
            figs = [f"cache-line round trip {units.ns(rtt)}" if rtt else "",
                    f"futex round trip {units.ns(futex)}" if futex else ""]
            figs = [f for f in figs if f]
            if figs:
                parts.append(f"{place}: {', '.join(figs)}")
        return "calibration: " + "; ".join(parts) if parts else "calibration: no figures"
    if run.has_calibration_field:
        return f"calibration skipped: {run.calibration_note or 'no reason given'}"
    return ""


# --- local vs across hosts ----------------------------------------------------------

LOCAL_REMOTE_TEXT = ("Latency: p50 round trip; throughput: payload bytes/s. remote / local "
                     "over 1 is a slower round trip (latency) or more throughput "
                     "(throughput).")


def local_remote_table(runs):
    """The "Local vs across hosts" table (Markdown lines), [] when the inputs
    do not hold both a local and a remote result of some case."""
    pairs = model.local_vs_remote(runs)
    if not pairs:
        return []
    multi = len(runs) > 2
    head = ["mechanism", "mode", "pattern", "size", "placement", "metric", "local",
            "across hosts", "remote / local", "remote host"]
    if multi:
        head[6:6] = ["local run"]
        head[-1:-1] = ["remote run"]
    lines = ["### Local vs across hosts", "", _line(head),
             _align(head, {"size", "local", "across hosts", "remote / local"})]
    for p in pairs:
        k = p.remote.key
        fmt = units.ns if p.metric == "p50_ns" else units.bytes_per_second
        cells = [f"`{k.mechanism}`", k.mode, k.pattern, units.size(k.size), k.placement,
                 "p50" if p.metric == "p50_ns" else "throughput",
                 fmt(p.local_value) + (f" {UNSTABLE_MARK}" if p.local.unstable else ""),
                 fmt(p.remote_value) + (f" {UNSTABLE_MARK}" if p.remote.unstable else ""),
                 units.ratio(p.ratio) if p.ratio is not None else "–",
                 p.remote_run.remote_host_label()]
        if multi:
            cells[6:6] = [p.local_run.label]
            cells[-1:-1] = [p.remote_run.label]
        lines.append(_line(cells))
    return lines + ["", LOCAL_REMOTE_TEXT]


# --- sync vs async --------------------------------------------------------------------

SYNC_ASYNC_TEXT = (
    "Each cell: the sync figure → the async one (async / sync). Paired only where sync and "
    "async mean the same thing: throughput (both stream), and latency with the async case "
    "in a closed loop at window 1 (async in flight: 1). A note such as 'sync blocks, async "
    "spins' means the two waited differently: the difference is the harness's choice, not "
    "the mechanism's.")
# What a pair's note says about a side, and the sentence that explains it.
PAIR_NOTES = {
    "buffer full": "buffer full: the mechanism's buffer was full most of the time (the share "
                   "of the span; its own limit, not an error)",
    "harness flow control": "harness flow control: the harness's flow control held the "
                            "sender (the share of the span), so it set the figure",
    "sender behind": "sender behind: the sender fell behind its schedule",
}


def by_size_text(items):
    """[(size, text)] of one row as one cell: the text alone when every
    size of the row says it, else 'text at 64 B, 1 KiB', texts joined by
    '; '; '–' when none says anything."""
    groups = {}
    for size, text in items:
        if text:
            groups.setdefault(text, []).append(size)
    every = {size for size, _text in items}
    return "; ".join(text if set(sizes) == every else f"{text} at {_sizes_text(sizes)}"
                     for text, sizes in groups.items()) or "–"


def pair_cell(pair):
    """'55.0 µs → 58.4 µs (1.06×)': sync → async (async / sync)."""
    if pair is None:
        return "–"
    fmt = units.ns if pair.metric == "p50_ns" else units.bytes_per_second
    ratio = units.ratio(pair.ratio) if pair.ratio is not None else "–"
    return f"{fmt(pair.sync_value)} → {fmt(pair.async_value)} ({ratio})"


def in_flight_cell(group, at):
    """How a row's async cases kept messages in flight: '1'; 'limit 65536
    msgs (harness)' when every size says it; a stream's limits per size in
    column order when only the number differs ('limit 65536 / 4096 / 256
    msgs (harness)'); else per size (by_size_text)."""
    flights = {p.key.size: p.in_flight for p in group}
    texts = {f.text() for f in flights.values()}
    if len(texts) == 1:
        return texts.pop() or "–"
    if (all(f.loop == "stream" and units.is_number(f.limit_messages)
            for f in flights.values())
            and len({f.limit_source for f in flights.values()}) == 1):
        source = next(iter(texts)).split(" msgs", 1)[1]  # ' (harness)'
        numbers = [_count(flights[s].limit_messages) if s in flights else "–" for s in at]
        return f"limit {' / '.join(numbers)} msgs{source}"
    return by_size_text([(s, f.text()) for s, f in flights.items()])


def _count(value):
    """'65536' (as InFlight.text() writes a limit)."""
    return str(int(value)) if float(value).is_integer() else units.count(value)


def pair_notes(pair):
    """[(note, share of the span or None)] of one pair: how the two sides
    waited when they differ, then what besides the mechanism set a side's
    figure (the keys of PAIR_NOTES, prefixed with the side)."""
    out = [(pair.wait_label(), None)] if pair.wait_label() else []
    for side, case in (("sync", pair.sync), ("async", pair.async_case)):
        if case.harness_limited:
            out.append((f"{side}: harness flow control", case.flow_stall()))
        if case.buffer_full:
            out.append((f"{side}: buffer full", case.channel_full()))
        if case.sender_behind:
            out.append((f"{side}: sender behind", None))
    return out


def notes_cell(group):
    """A row's notes: 'sync blocks, async polls; async: buffer full 92% at
    64 B, 88% at 1 KiB' (a share of the span per size)."""
    items, shares = [], {}
    for p in group:
        for note, share in pair_notes(p):
            if share is None:
                items.append((p.key.size, note))
            else:
                shares.setdefault(note, []).append((p.key.size, share))
    text = by_size_text(items) if items else ""
    parts = [text] if text and text != "–" else []
    for note, values in shares.items():
        parts.append(f"{note} " + ", ".join(f"{100 * v:.0f}% at {units.size(s)}"
                                            for s, v in values))
    return "; ".join(parts) or "–"


def sync_async_lines(runs, sizes=None):
    """The "Sync vs async" section (Markdown lines): the pairs of
    model.sync_vs_async at the summary's sizes that mean the same thing
    (throughput always, latency only with the async case in a closed loop
    at window 1), one row per mechanism and figure with a cell per size, in
    a collapsed <details> block; then what a cell is and one line on the
    latency pairs left out; [] without pairs."""
    sizes = summary_sizes(runs) if sizes is None else sizes
    pairs = [p for p in model.sync_vs_async(runs) if p.key.size in sizes]
    if not pairs:
        return []
    shown = [p for p in pairs if not p.left_out]
    lines = ["### Sync vs async", ""]
    if shown:
        multi = len(runs) > 1
        places = len({p.key.placement for p in pairs}) > 1
        at = [s for s in sizes if any(p.key.size == s for p in shown)]
        rows = {}
        for p in shown:
            k = p.key
            rows.setdefault((id(p.run), k.mechanism, k.where, p.async_case.key.engine,
                             k.placement, p.metric), []).append(p)
        head = ((["host"] if multi else []) + ["mechanism", "figure"]
                + [units.size(s) for s in at] + ["async in flight", "note"])
        table = [_line(head), _align(head, set(head[-len(at) - 2:-2]))]
        for (_run, mech, where, engine, place, metric), group in rows.items():
            first = group[0]
            cells = (([first.run.label] if multi else [])
                     + [mechanism_name(mech, where, engine) + (f" {place}" if places else ""),
                        "p50" if metric == "p50_ns" else "throughput"])
            by_size = {p.key.size: p for p in group}
            cells += [pair_cell(by_size.get(s)) for s in at]
            cells += [in_flight_cell(group, at), notes_cell(group)]
            table.append(_line(cells))
        lines += [f"<details><summary>{len(shown)} pairs: each mechanism's sync → async p50 "
                  "round trip and throughput at each size</summary>", "",
                  *table, "", "</details>", ""]
        text = SYNC_ASYNC_TEXT
        for name, sentence in PAIR_NOTES.items():
            if any(f": {name}" in line for line in table[2:]):
                text += f" {sentence[0].upper()}{sentence[1:]}."
        lines.append(text)
    left = model.left_out_line(pairs)
    if left:
        lines += ["", left]
    return lines


# --- failed, skipped and flagged cases ----------------------------------------------

PROBLEMS = {"failed": "**failed**", "skipped": "skipped",
            "flagged": "**flagged as measurement errors** (not results, left out of the "
                       "tables)"}


def reason(case):
    """The case's failure, skip or measurement-error reason, its own size
    taken out ('message size 16384 exceeds ...' reads 'the message size
    exceeds ...') so one reason covers every size it applies to."""
    text = case.message or "no reason given"
    return re.sub(rf"\b(?:message )?size {case.key.size}\b", "the message size", text)


def cases_text(items, runs):
    """[(run, case)] grouped compactly: per mechanism, its modes that
    cover the same patterns and sizes, then the patterns and sizes
    ('`posix-mq` sync, async · latency, throughput 16 KiB, 256 KiB');
    groups joined by '; '."""
    multi = len(runs) > 1
    places = len({p for r in runs for p in r.placements()}) > 1
    series = {}
    for run, case in items:
        k = case.key
        name = (f"{run.label}: " if multi else "") + mechanism_name(k.mechanism, k.where,
                                                                    k.engine)
        mode = k.mode + (f" {k.placement}" if places and k.placement != "unknown" else "")
        series.setdefault(name, {}).setdefault(mode, {}).setdefault(k.pattern, set()).add(
            k.size)
    clauses = []
    for name, modes in series.items():
        alike = {}
        for mode, patterns in modes.items():
            what = tuple(sorted((p, tuple(sorted(s))) for p, s in patterns.items()))
            alike.setdefault(what, []).append(mode)
        for what, same in alike.items():
            by_sizes = {}
            for pattern, sizes in what:
                by_sizes.setdefault(sizes, []).append(pattern)
            parts = [f"{', '.join(ps)} {_sizes_text(sz)}" for sz, ps in by_sizes.items()]
            clauses.append(f"{name} {', '.join(same)} · {' and '.join(parts)}")
    return "; ".join(clauses)


def problems_lines(runs):
    """Failed, skipped and flagged cases: one line per status and reason,
    the cases it covers grouped (cases_text)."""
    groups = {}
    for status in PROBLEMS:
        for run in runs:
            for case in run.case_list(status=status):
                groups.setdefault((status, reason(case)), []).append((run, case))
    return [f"- {PROBLEMS[status]}: {cases_text(items, runs)}: {why}"
            for (status, why), items in groups.items()]


def problems_heading(runs):
    """'Skipped cases', 'Failed and skipped cases', 'Failed, skipped and
    flagged cases': the kinds present."""
    kinds = [s for s in PROBLEMS if any(r.case_list(status=s) for r in runs)]
    text = kinds[-1] if len(kinds) == 1 else ", ".join(kinds[:-1]) + " and " + kinds[-1]
    return f"### {text[0].upper()}{text[1:]} cases"


def render_summary(runs):
    """The whole summary document."""
    sizes = summary_sizes(runs)
    parts = ["## ipcbench results", "", *context_lines(runs)]
    explained = set()
    for pattern in HEADINGS:
        section = question_lines(runs, pattern, sizes, explained)
        if section:
            parts += ["", *section]
    for section in (floor_lines(runs, sizes), sync_async_lines(runs, sizes),
                    local_remote_table(runs)):
        if section:
            parts += ["", *section]
    problems = problems_lines(runs)
    if problems:
        parts += ["", problems_heading(runs), "", *problems]
    return "\n".join(parts) + "\n"
