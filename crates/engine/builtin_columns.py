"""Regenerates src/builtin_columns.json: the built-in columns of every stream and their types.

Usage: builtin_columns.py SPEC_DIR SYNC_DIR DISCOVER_JSON > src/builtin_columns.json

SPEC_DIR holds the official specs' summaries (endpoints-v1.json, endpoints-v2.json, each list
field with its type). SYNC_DIR is a `type: jsonl` target that `pipedrive-sync sync` filled with
every stream of a simulated company (`pipedrive-sync sim --scale small`): it names the columns
a record really has once transformed (child and derived streams, wrapper keys), and tells
timestamps and dates apart where the specs only say `string`. DISCOVER_JSON is the output of
`pipedrive-sync discover --json` (each stream's endpoint). A spec type wins over what the data showed, except
that `string` is refined to date or timestamp, and integers seen as fractions widen to double.
Custom-field columns (named in the `custom_fields_mapping` stream) and the engine's own columns
(`_deleted`, `_synced_at`...) are left out: the first come from the `*Fields` definitions, the second from the code.
"""

import gzip
import json
import os
import re
import sys

DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
TIMESTAMP = re.compile(
    r"^\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}(:?\d{2})?)?$"
)
MONEY = re.compile(r"(cost|price|amount|sum|revenue|progress)")


def of(value):
    """Mirrors ColumnType::of in src/schema.rs."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "big_int"
    if isinstance(value, float):
        return "double"
    if isinstance(value, str):
        if DATE.match(value):
            return "date"
        if TIMESTAMP.match(value):
            return "timestamp"
        return "text"
    return "json"


def widen(a, b):
    """Mirrors ColumnType::widen."""
    if a == b or b == "null":
        return a
    if a == "null":
        return b
    if {a, b} == {"big_int", "double"}:
        return "double"
    if {a, b} == {"date", "timestamp"}:
        return "timestamp"
    return "text"


def spec_type(field):
    kind = field.get("type")
    fmt = field.get("format")
    if kind == "integer":
        return "big_int"
    if kind == "number":
        return "double"
    if kind == "boolean":
        return "boolean"
    if kind in ("object", "array"):
        return "json"
    if kind == "string" and fmt == "date":
        return "date"
    if kind == "string" and fmt == "date-time":
        return "timestamp"
    return None  # a string: its values decide between text, date and timestamp


def spec_fields(spec_dir):
    fields = {}
    for version in ("v1", "v2"):
        with open(f"{spec_dir}/endpoints-{version}.json") as f:
            spec = json.load(f)
        for op in spec["operations"]:
            response = op.get("response") or {}
            items = response.get("data_item_fields")
            if op["method"] == "GET" and items:
                fields[f"/api/{version}{op['path']}"] = items
    return fields


def main():
    spec_dir, sync_dir, discovered = sys.argv[1], sys.argv[2], sys.argv[3]
    listed = json.load(open(discovered))
    streams = listed["streams"] if isinstance(listed, dict) else listed
    paths = {s["name"]: s.get("path") or s.get("endpoint") for s in streams}
    order = [s["name"] for s in streams]
    spec = spec_fields(spec_dir)
    observed = {}
    custom = {}
    for stream in sorted(os.listdir(sync_dir)):
        folder = os.path.join(sync_dir, stream)
        if not os.path.isdir(folder) or stream.startswith("_"):
            continue
        columns = observed.setdefault(stream, {})
        for name in sorted(os.listdir(folder)):
            if not name.endswith(".jsonl.gz"):
                continue
            for line in gzip.open(os.path.join(folder, name), "rt"):
                record = json.loads(line)
                if stream == "custom_fields_mapping" and record.get("column_name"):
                    custom.setdefault(record["stream"], set()).add(record["column_name"])
                for key, value in record.items():
                    columns[key] = widen(columns.get(key, "null"), of(value))
    # An archived list renders the same records as its live one: one set of columns for both,
    # whichever list the sample happened to show a field in.
    for stream in list(observed):
        twin = stream.removesuffix("_archived")
        if twin != stream and twin in observed:
            for a, b in ((stream, twin), (twin, stream)):
                for name, kind in observed[a].items():
                    observed[b][name] = widen(observed[b].get(name, "null"), kind)
    out = {}
    for stream in order:
        columns = observed.get(stream, {})
        items = spec.get(paths.get(stream, ""), {})
        own = custom.get(stream, set())
        result = {}
        for name, seen in columns.items():
            if name.startswith("_"):
                continue
            if any(name == c or name.startswith(c + "_") for c in own):
                continue
            declared = spec_type(items[name]) if name in items else None
            if declared is None:
                kind = "text" if seen == "null" else seen
                # Amounts the specs do not type may have cents even where the sample had none.
                if kind == "big_int" and MONEY.search(name):
                    kind = "double"
            elif declared in ("big_int", "double") and seen in ("big_int", "double"):
                kind = widen(declared, seen)
            elif seen in ("null", declared):
                kind = declared
            else:
                kind = widen(declared, seen)
            result[name] = kind
        # Fields the spec lists that the simulated company left out, where the records are
        # the list's own (most of their columns are the spec's).
        if items and sum(n in items for n in result) * 2 >= len(result):
            for name, field in items.items():
                if name not in result and name != "custom_fields":
                    result[name] = spec_type(field) or "text"
        out[stream] = [[name, kind] for name, kind in result.items()]
    # One stream a line: diffs show which stream changed.
    sys.stdout.write("{\n")
    lines = [f"{json.dumps(s)}: {json.dumps(c)}" for s, c in out.items()]
    sys.stdout.write(",\n".join(lines))
    sys.stdout.write("\n}\n")


if __name__ == "__main__":
    main()
