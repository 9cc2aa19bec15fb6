"""Property tests of the result-file reader (model.load and what a report
reads from the Run it returns): whatever a file holds, the reader either
returns a Run that every accessor, the Markdown summary, the CSV table and
compare can read, or refuses the file with its own InputError (one line,
naming the file). A traceback is a bug.

Inputs: arbitrary bytes, arbitrary JSON, JSON shaped like a result, and
valid result files mutated (values replaced, keys dropped or added, bytes
flipped, text cut short). python3-hypothesis stands in for a coverage-guided
fuzzer (atheris is not in Debian).

The example counts are bounded and the generation is derandomized, so the
run takes seconds and a failure reproduces on every run. To explore with
fresh random examples: IPCBENCH_PROPERTY_EXAMPLES=2000 (examples per test).
"""

import copy
import json
import os
import tempfile

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.configuration import set_hypothesis_home_dir

from reportutil import (DATA, HOSTCROSSING, as_v2, load, mixed_doc, open_loop_v2, remote_doc,
                        set_stream, set_wait)

from ipcbench_report import compare, csv, html, markdown, model

_EXPLORE = int(os.environ.get("IPCBENCH_PROPERTY_EXAMPLES", "0") or 0)

# Hypothesis keeps caches (e.g. its Unicode tables) in ./.hypothesis; keep
# them out of the source tree.
set_hypothesis_home_dir(os.path.join(tempfile.gettempdir(), "ipcbench-hypothesis"))


def bounded(examples):
    """Settings of one property: `examples` derandomized examples, or the
    exploration count with random ones; never writes a .hypothesis database
    into the tree."""
    return settings(max_examples=_EXPLORE or examples, derandomize=not _EXPLORE, database=None,
                    deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                          HealthCheck.data_too_large,
                                                          HealthCheck.function_scoped_fixture])


# ---------------------------------------------------------------------------
# What the reader is fed.

# Words of the real format, so generated objects reach past the first checks.
VOCABULARY = ["ipcbench", "benchmarks", "context", "schema_version", "complete", "host",
              "configuration", "failed", "clock", "calibration", "flagged", "name", "run_name",
              "run_type", "aggregate_name", "mechanism", "mode", "pattern", "message_size",
              "placement", "histogram", "percentile", "value_ns", "p50_ns", "p99_ns",
              "real_time", "iterations", "skipped", "error_occurred", "error_message",
              "cpus", "floor", "floor_ratio", "cv", "unstable", "placements", "mechanisms",
              "iteration", "aggregate", "median", "mean", "sync", "async", "latency",
              "throughput", "cross-cpu", "same-cpu", "pipe", "hostname", "cpu_model",
              "across_hosts", "remote", "address", "peer_cpu", "protocol_version",
              "oneway_note", "oneway_p50_ns", "floor_note", "tcp"]

scalars = (st.none() | st.booleans() | st.integers(min_value=-2**70, max_value=2**70)
           | st.floats(allow_nan=False, allow_infinity=False)
           | st.sampled_from([0, -1, 1, 2, 1e308, -1e308, 5e-324, 2**63, 2**64])
           | st.text(max_size=20) | st.sampled_from(VOCABULARY))
keys = st.sampled_from(VOCABULARY) | st.text(max_size=10)
json_values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=5) | st.dictionaries(keys, children, max_size=6),
    max_leaves=25)


def expect_reader_contract(path, allow_incomplete=False):
    """Loads `path`; a Run must be readable throughout, a refusal must be
    InputError with one line naming the file. Returns the Run or None."""
    try:
        run = model.load(path, allow_incomplete=allow_incomplete)
    except model.InputError as e:
        text = str(e)
        assert text.startswith(str(path)) and "\n" not in text, text
        return None
    read_everything(run)
    return run


def read_everything(run):
    """Every accessor the reports use, on every case: none may raise."""
    model.assign_labels([run, run])
    for accessor in (lambda: run.meta, lambda: run.host, lambda: run.config,
                     lambda: run.context, lambda: run.complete, lambda: run.calibration,
                     lambda: run.has_calibration_field, lambda: run.calibration_note,
                     run.calibration_placements, lambda: run.harness_ns,
                     lambda: run.clock_read_ns, lambda: run.flagged, run.flagged_cases,
                     run.unstable_cases, run.configured_placements, lambda: run.date,
                     run.mechanisms, run.modes, run.placements, run.sizes,
                     lambda: run.remote, lambda: run.remote_host, lambda: run.remote_address,
                     lambda: run.remote_cpus, run.remote_host_label, run.wheres,
                     run.has_remote_cases):
        accessor()
    run.case_list(status=None)
    for pattern in ("latency", "throughput"):
        run.sizes(pattern)
    model.same_host(run, run)
    model.same_remote_host(run, run)
    for case in run.cases.values():
        case.key.label()
        case.key.loose()
        case.key.series()
        case.key.local_twin()
        _ = (case.across_hosts, case.remote_address, case.peer_cpu, case.oneway_note)
        for name in model.ONEWAY_FIELDS:
            case.oneway(name)
        _ = (case.status, case.message, case.ok, case.flagged, case.repetitions, case.cpus,
             case.iterations, case.aggregates, case.measurement_error, case.unstable)
        for name in model.NUMERIC_FIELDS:
            case.value(name)
            case.samples(name)
            case.cv(name)
        case.figure()
        case.histogram()
        case.cpu_ns_per_msg()
        case.stability()
        floor = case.floor()
        if floor is not None:
            floor.label, floor.kind, floor.value_text()
        run_floor = run.floor(case)
        if run_floor is not None:
            run_floor.value_text()
        run.floor_ratio(case)
        for placement in run.placements(status=None) + ["cross-cpu"]:
            run.latency_floor(placement, case.key.size)
            run.bandwidth_ceiling(case.key.size, placement)
    model.finite([c.value("p50_ns") for c in run.cases.values()])
    # The plain-text readers of a Run: the summary, the table, a comparison.
    markdown.render_summary([run])
    markdown.render_summary([run, run])
    csv.render_csv([run])
    compare.compare_runs(run, run)
    for p in model.local_vs_remote([run]):
        _ = p.ratio
    # How async figures were measured and what limited them (schema version 2).
    for case in run.cases.values():
        flight = run.in_flight(case)
        _ = (flight.text(), flight.like_sync, flight.why_not_like_sync(), case.wait,
             case.sender_behind, case.harness_limited, case.buffer_full)
        for limit in case.limits():
            limit.text()
    pairs = model.sync_vs_async([run, run])
    for p in pairs:
        _ = (p.ratio, p.wait_label(), p.notes())
    model.left_out_line(pairs)
    # The report's tables and run context (not its plots: matplotlib is slow).
    html.cases_table([run])
    html.limits_legend_html([run])
    html.cases_columns_text([run])
    if pairs:
        html.sync_async_table([p for p in pairs if not p.left_out], [run, run])
    html.local_remote_section([run, run])
    html.context_block(run, run.label)


# ---------------------------------------------------------------------------
# Seeds: the checked-in results, cut down so one example validates in
# milliseconds (the schema check of a 90-case file takes ~0.2 s).

def _small(doc, keep):
    doc = copy.deepcopy(doc)
    doc["benchmarks"] = [e for i, e in enumerate(doc["benchmarks"]) if keep(i, e)]
    return doc


@pytest.fixture(scope="module")
def seeds(tmp_path_factory):
    every = load(DATA / "all-mechanisms.json")
    reps = load(DATA / "reps5.json")
    docs = {
        # measured latency and throughput cases plus the skipped ones
        "single": _small(every, lambda i, e: i < 4 or e.get("skipped")),
        # one mechanism with 5 repetitions and its aggregates
        "repetitions": _small(reps, lambda i, e: e["mechanism"] == "pipe"
                              and e["pattern"] == "latency" and e["message_size"] == 64),
        "interrupted": load(DATA / "interrupted.json"),
        # a remote run ('ipcbench run --remote'): async latency without
        # one-way figures, no floors
        "remote": _small(remote_doc(), lambda i, e: e["mechanism"] == "tcp"
                         and e["message_size"] == 64),
        # local and remote cases of one mechanism in one file (the reader
        # keeps them apart; the side-by-side view pairs them)
        "mixed": _small(mixed_doc(_small(load(HOSTCROSSING),
                                          lambda i, e: e["mechanism"] == "udp"
                                          and e["message_size"] == 64)),
                        lambda i, e: True),
        # schema version 2: wait on every row, an open loop whose sender fell
        # behind, a stream the harness's flow control held
        "v2": set_stream(open_loop_v2(set_wait(_small(as_v2(), lambda i, e: e["mechanism"]
                                                      == "udp" and e["message_size"] == 64)),
                                      2000, sender_behind=True), "udp", flow_stall=0.2,
                         channel_full=0.6),
    }
    out = tmp_path_factory.mktemp("seeds")
    for name, doc in docs.items():
        path = out / f"{name}.json"
        path.write_text(json.dumps(doc), encoding="utf-8")
        # The seeds themselves are valid results (else the mutations test little).
        assert model.load(path, allow_incomplete=True) is not None, name
    return docs


def _paths(value, prefix=()):
    """Every path into a JSON value (the value itself first)."""
    yield prefix
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _paths(v, prefix + (i,))


def _mutate(doc, path, how, new_value):
    """Applies one mutation at `path`: replace the value, delete it, add a
    key next to it, or swap it for a differently typed one."""
    if not path:
        return new_value if how == "replace" else doc
    parent = doc
    for part in path[:-1]:
        parent = parent[part]
    last = path[-1]
    if how == "replace":
        parent[last] = new_value
    elif how == "delete":
        del parent[last]
    elif how == "add" and isinstance(parent, dict):
        parent[f"{last}_extra"] = new_value
    elif how == "add":
        parent.insert(last, new_value)
    elif how == "retype":
        old = parent[last]
        parent[last] = ({} if isinstance(old, list) else [] if isinstance(old, dict)
                        else str(old) if not isinstance(old, str) else len(old))
    return doc


def _get(doc, path):
    for part in path:
        doc = doc[part]
    return doc


def _same_type(old, rnd):
    """A strategy for a value of old's type: other numbers (zero, negative,
    huge, tiny), strings, the other boolean, a list or object with an item
    dropped, duplicated or emptied."""
    if isinstance(old, bool):
        return st.just(not old)
    if isinstance(old, int):
        return st.sampled_from([0, -1, 1, old + 1, -old, 2**53, 2**63]) | st.integers()
    if isinstance(old, float):
        return (st.sampled_from([0.0, -0.0, -1.0, 1e-300, 1e300, old * 1e6, -old])
                | st.floats(allow_nan=False, allow_infinity=False))
    if isinstance(old, str):
        return st.sampled_from(VOCABULARY + ["", old + "x", old.upper()]) | st.text(max_size=12)
    if isinstance(old, list):
        out = list(old)
        if out and rnd.random() < 0.5:
            out.pop(rnd.randrange(len(out)))
        elif out:
            out.insert(rnd.randrange(len(out)), copy.deepcopy(rnd.choice(out)))
        return st.sampled_from([out, []])
    if isinstance(old, dict):
        out = dict(old)
        if out:
            out.pop(rnd.choice(sorted(out)))
        return st.sampled_from([out, {}])
    return json_values


@st.composite
def mutated(draw, docs):
    name = draw(st.sampled_from(sorted(docs)))
    doc = copy.deepcopy(docs[name])
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        if not isinstance(doc, dict):
            break
        # Histograms hold most of a file's values; aim at the other fields
        # mostly (replacing the whole file is the arbitrary-JSON test's job).
        paths = [p for p in _paths(doc) if p]
        others = [p for p in paths if "histogram" not in p]
        # (A seeded Random picks uniformly; sampled_from leans to the first.)
        rnd = draw(st.randoms(use_true_random=False))
        path = rnd.choice(others if others and rnd.random() < 0.75 else paths)
        how = rnd.choice(["replace", "delete", "add", "retype", "same", "same", "same"])
        if how == "same":  # a value of the same type: what the schema lets through
            how, value = "replace", draw(_same_type(_get(doc, path), rnd))
        else:
            value = draw(json_values)
        doc = _mutate(doc, path, how, value)
    return doc


# ---------------------------------------------------------------------------
# The properties.

@bounded(150)
@given(blob=st.binary(max_size=2000))
def test_arbitrary_bytes_are_refused_cleanly(tmp_path, blob):
    path = tmp_path / "blob.json"
    path.write_bytes(blob)
    expect_reader_contract(path)


@bounded(200)
@given(value=json_values)
def test_arbitrary_json_is_refused_cleanly(tmp_path, value):
    path = tmp_path / "value.json"
    path.write_text(json.dumps(value), encoding="utf-8")
    expect_reader_contract(path)


@bounded(150)
@given(doc=st.fixed_dictionaries({"ipcbench": json_values, "benchmarks": json_values},
                                 optional={"context": json_values}))
def test_result_shaped_json_is_refused_cleanly(tmp_path, doc):
    path = tmp_path / "shaped.json"
    path.write_text(json.dumps(doc), encoding="utf-8")
    expect_reader_contract(path, allow_incomplete=True)


@bounded(300)
@given(data=st.data(), allow_incomplete=st.booleans())
def test_mutated_results_are_read_or_refused_cleanly(tmp_path, seeds, data, allow_incomplete):
    doc = data.draw(mutated(seeds))
    path = tmp_path / "mutated.json"
    path.write_text(json.dumps(doc), encoding="utf-8")
    expect_reader_contract(path, allow_incomplete=allow_incomplete)


@bounded(150)
@given(data=st.data())
def test_damaged_result_bytes_are_read_or_refused_cleanly(tmp_path, seeds, data):
    text = json.dumps(seeds[data.draw(st.sampled_from(sorted(seeds)))]).encode()
    how = data.draw(st.sampled_from(["cut", "flip", "insert"]))
    at = data.draw(st.integers(min_value=0, max_value=len(text) - 1))
    if how == "cut":
        text = text[:at]
    elif how == "flip":
        text = text[:at] + bytes([text[at] ^ data.draw(st.integers(1, 255))]) + text[at + 1:]
    else:
        text = text[:at] + data.draw(st.binary(min_size=1, max_size=8)) + text[at:]
    path = tmp_path / "damaged.json"
    path.write_bytes(text)
    expect_reader_contract(path, allow_incomplete=True)


@pytest.mark.parametrize("depth", [1000, 100000])
def test_deeply_nested_json_is_refused_cleanly(tmp_path, depth):
    # Python's json parser recurses: a hostile file must not turn that into
    # a traceback (RecursionError escaped the reader before).
    path = tmp_path / "deep.json"
    path.write_text('{"ipcbench": ' + "[" * depth + "]" * depth + "}", encoding="utf-8")
    expect_reader_contract(path)
    path.write_text("[" * depth, encoding="utf-8")
    expect_reader_contract(path)
