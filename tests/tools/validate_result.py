#!/usr/bin/python3
"""Checks an ipcbench result file against the result schema.

Usage: validate_result.py SCHEMA RESULT.json

Exit status:
  0  RESULT.json is valid
  1  it is not (unreadable, not strict JSON, against the schema, or against
     one of the rules below): one line on stderr naming the first error's
     location and what is wrong
  2  usage error, or SCHEMA itself is unreadable or not a valid JSON Schema

After the schema, the rules the schema cannot state, which relate one field
to another (each described in the schema's text):
  - 'unstable' is true exactly when 'cv' is over 0.05;
  - a same-cpu case ran both processes on one CPU, a cross-cpu case on two;
  - a case's placement is one of configuration.placements (or 'unknown');
  - ipcbench.flagged lists exactly the cases whose entries carry
    measurement_error, with the same reason;
  - a calibration has one set of floors per placement of the run;
  - a case's floor_value is the calibration's figure of that floor on its
    placement (and size), and floor_ratio on an iteration, mean or median
    entry is p50_ns / floor_value (latency) or floor_value /
    bytes_per_second (throughput);
  - a remote run (ipcbench.remote) has across_hosts true on every entry, and
    each entry's remote.address is ipcbench.remote.address; a known
    remote.peer_cpu is the entry's peer CPU (cpus[1]) and one of the CPUs
    serve was given (ipcbench.remote.cpus, when pinned). The placement rule
    on cpus does not apply across hosts (the two CPUs are on two machines).
    (That across_hosts entries need ipcbench.remote, have no floor and no
    one-way figures, the schema itself states.)

Uses the Debian package python3-jsonschema (run with /usr/bin/python3). The
result file must be strict JSON: NaN and Infinity are rejected, as the suite
promises never to write them.
"""

import json
import sys

try:
    import jsonschema
    from jsonschema.exceptions import SchemaError, best_match
    from jsonschema.validators import validator_for
except ImportError as e:  # pragma: no cover - environment problem
    print(f"validate_result: cannot import jsonschema ({e}); install python3-jsonschema "
          "and run with /usr/bin/python3", file=sys.stderr)
    sys.exit(2)


def reject_constant(name):
    raise ValueError(f"{name} is not valid JSON")


def json_path(parts):
    """'$.benchmarks[3].histogram' from a jsonschema error's absolute_path."""
    out = "$"
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out


def describe(error):
    """The error's message, short enough for one line: jsonschema quotes the
    whole offending instance in some messages (e.g. for "not")."""
    if error.validator == "not":
        return f"must not match {json.dumps(error.validator_value, sort_keys=True)}"
    if error.validator is None:  # the schema 'false': the key must be absent
        return "must be absent here (see the schema's rule for this entry)"
    message = " ".join(error.message.split())
    return message if len(message) <= 300 else message[:297] + "..."


UNSTABLE_CV = 0.05
FLOOR_FIGURES = {"payload_rtt": ("payload_rtt_ns", True), "futex_rtt": ("futex_rtt_ns", False),
                 "cross_core_copy": ("cross_core_copy_bytes_per_second", True),
                 "memcpy": ("memcpy_bytes_per_second", True)}


def _close(a, b, rel=1e-6):
    return abs(a - b) <= rel * max(abs(a), abs(b))


def _number(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def remote_errors(where, entry, remote):
    """The rules relating an entry to the remote run it is part of (remote:
    ipcbench.remote, or None in a local run)."""
    out = []
    across = entry.get("across_hosts") is True
    if remote is not None and not across:
        out.append((where + ["across_hosts"], "is missing or false in a remote run "
                                              "(ipcbench.remote): every entry of it is "
                                              "across hosts"))
    if not across or remote is None:
        return out
    own = entry["remote"]
    if own["address"] != remote["address"]:
        out.append((where + ["remote", "address"], f"{own['address']!r} is not "
                                                   f"ipcbench.remote.address "
                                                   f"{remote['address']!r}"))
    peer, cpus = own["peer_cpu"], entry.get("cpus", [])
    if peer >= 0 and len(cpus) == 2 and cpus[1] != peer:
        out.append((where + ["remote", "peer_cpu"], f"{peer} is not the entry's peer CPU "
                                                    f"(cpus[1] = {cpus[1]})"))
    if peer >= 0 and remote["cpus"] and peer not in remote["cpus"]:
        out.append((where + ["remote", "peer_cpu"], f"{peer} is not among the CPUs serve was "
                                                    f"given (ipcbench.remote.cpus "
                                                    f"{remote['cpus']})"))
    return out


def relation_errors(result):
    """(json path parts, message) for every broken cross-field rule of a
    file the schema accepted, in file order."""
    meta = result["ipcbench"]
    config = meta["configuration"]
    placements = config.get("placements")
    calibration = meta.get("calibration")
    per_place = calibration.get("placements", {}) if isinstance(calibration, dict) else {}
    out = []
    flagged_entries = {}
    remote = meta.get("remote")
    for i, e in enumerate(result["benchmarks"]):
        where = ["benchmarks", i]
        if "cv" in e and e.get("unstable") != (e["cv"] > UNSTABLE_CV):
            out.append((where + ["unstable"], f"is {e.get('unstable')} but cv is {e['cv']} "
                                              f"(unstable means cv > {UNSTABLE_CV})"))
        cpus, place = e.get("cpus", []), e.get("placement")
        across = e.get("across_hosts") is True
        if place == "same-cpu" and len(cpus) == 2 and cpus[0] != cpus[1] and not across:
            out.append((where + ["cpus"], f"{cpus} are two CPUs, under same-cpu placement"))
        if place == "cross-cpu" and len(cpus) == 2 and cpus[0] == cpus[1] and not across:
            out.append((where + ["cpus"], f"{cpus} is one CPU, under cross-cpu placement"))
        out += remote_errors(where, e, remote)
        if isinstance(placements, list) and place not in placements + ["unknown"]:
            out.append((where + ["placement"], f"{place!r} is not among configuration."
                                               f"placements {placements}"))
        if "measurement_error" in e:
            flagged_entries.setdefault(e["run_name"], (i, e["measurement_error"]))
        name, value = e.get("floor"), e.get("floor_value")
        if isinstance(name, str) and _number(value):
            key, by_size = FLOOR_FIGURES[name]
            figure = (per_place.get(place) or {}).get(key)
            if by_size:
                figure = figure.get(str(e["message_size"])) if isinstance(figure, dict) else None
            if e.get("floor_source") == "adjacent":
                pass  # re-measured right before the case: not the calibration's figure
            elif not _number(figure):
                out.append((where + ["floor"], f"{name!r} has no figure in ipcbench.calibration."
                                               f"placements[{place!r}].{key}"))
            elif not _close(value, figure, 1e-9):
                out.append((where + ["floor_value"], f"{value} is not the calibration's "
                                                     f"{key} ({figure})"))
            ratio = e.get("floor_ratio")
            measurement = e.get("run_type") == "iteration" or e.get("aggregate_name") in (
                "mean", "median")
            if measurement and _number(ratio) and value > 0:
                # A load sweep's rows are round trips too.
                round_trips = e["pattern"] in ("latency", "load")
                if round_trips and _number(e.get("p50_ns")):
                    expect, how = e["p50_ns"] / value, "p50_ns / floor_value"
                elif not round_trips and _number(e.get("bytes_per_second")) \
                        and e["bytes_per_second"] > 0:
                    expect, how = value / e["bytes_per_second"], "floor_value / bytes_per_second"
                else:
                    expect = None
                if expect is not None and not _close(ratio, expect):
                    out.append((where + ["floor_ratio"], f"{ratio} is not {how} ({expect:.6g})"))
    if "flagged" in meta:
        listed = {}
        for j, f in enumerate(meta["flagged"]):
            listed.setdefault(f["name"], (j, f["reason"]))
        for name, (i, reason) in flagged_entries.items():
            if name not in listed:
                out.append((["benchmarks", i, "measurement_error"],
                            f"the case {name!r} is flagged but not in ipcbench.flagged"))
            elif listed[name][1] != reason:
                out.append((["ipcbench", "flagged", listed[name][0], "reason"],
                            f"{listed[name][1]!r} is not the entries' measurement_error "
                            f"{reason!r}"))
        for name, (j, _reason) in listed.items():
            if name not in flagged_entries:
                out.append((["ipcbench", "flagged", j],
                            f"{name!r} is listed but no entry of it carries measurement_error"))
    if per_place and isinstance(placements, list) and set(per_place) != set(placements):
        out.append((["ipcbench", "calibration", "placements"],
                    f"has {sorted(per_place)}, the run's placements are {placements}"))
    return out


def main(argv):
    if len(argv) != 3:
        print("usage: validate_result.py SCHEMA RESULT.json", file=sys.stderr)
        return 2
    schema_path, result_path = argv[1], argv[2]

    try:
        with open(schema_path, encoding="utf-8") as f:
            schema = json.load(f)
        cls = validator_for(schema)
        cls.check_schema(schema)
    except (OSError, ValueError) as e:
        print(f"validate_result: cannot read schema {schema_path}: {e}", file=sys.stderr)
        return 2
    except SchemaError as e:
        print(f"validate_result: {schema_path} is not a valid JSON Schema: "
              f"{json_path(e.absolute_path)}: {e.message}", file=sys.stderr)
        return 2

    try:
        with open(result_path, encoding="utf-8") as f:
            result = json.load(f, parse_constant=reject_constant)
    except RecursionError:
        print(f"{result_path}: invalid: JSON nested too deeply to read", file=sys.stderr)
        return 1
    except (OSError, ValueError) as e:
        print(f"{result_path}: invalid: cannot read as JSON: {e}", file=sys.stderr)
        return 1

    validator = cls(schema)
    # best_match picks the most relevant error deterministically (the deepest,
    # least ambiguous one) among all the errors found.
    try:
        error = best_match(validator.iter_errors(result))
    except RecursionError:
        print(f"{result_path}: invalid: nested too deeply to check", file=sys.stderr)
        return 1
    if error is not None:
        print(f"{result_path}: invalid at {json_path(error.absolute_path)}: {describe(error)}",
              file=sys.stderr)
        return 1
    broken = relation_errors(result)
    if broken:
        where, what = broken[0]
        more = f" (and {len(broken) - 1} more)" if len(broken) > 1 else ""
        print(f"{result_path}: invalid at {json_path(where)}: {what}{more}", file=sys.stderr)
        return 1
    print(f"{result_path}: valid")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
