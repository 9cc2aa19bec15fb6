#!/usr/bin/python3
"""Checks an ipcbench result file against the result schema.

Usage: validate_result.py SCHEMA RESULT.json

Exit status:
  0  RESULT.json is valid
  1  it is not (unreadable, not strict JSON, or against the schema): one line
     on stderr naming the first error's location and what is wrong
  2  usage error, or SCHEMA itself is unreadable or not a valid JSON Schema

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
    message = " ".join(error.message.split())
    return message if len(message) <= 300 else message[:297] + "..."


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
    except (OSError, ValueError) as e:
        print(f"{result_path}: invalid: cannot read as JSON: {e}", file=sys.stderr)
        return 1

    validator = cls(schema)
    # best_match picks the most relevant error deterministically (the deepest,
    # least ambiguous one) among all the errors found.
    error = best_match(validator.iter_errors(result))
    if error is None:
        print(f"{result_path}: valid")
        return 0
    print(f"{result_path}: invalid at {json_path(error.absolute_path)}: {describe(error)}",
          file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
