"""Validates Airbyte protocol output against the protocol's published models.

Usage: validate_airbyte.py MESSAGES_FILE [--configured-catalog FILE]

Every line of MESSAGES_FILE must be one AirbyteMessage whose payload matches its type and
carries no key the protocol does not define (the models accept unknown keys, so a misspelt
one would otherwise pass). Prints a JSON summary (message count per type) on success; exits 1
naming the first offending line otherwise.
"""

import enum
import json
import sys

from airbyte_protocol import models
from pydantic import BaseModel

PAYLOAD = {
    "RECORD": "record",
    "STATE": "state",
    "LOG": "log",
    "SPEC": "spec",
    "CONNECTION_STATUS": "connectionStatus",
    "CATALOG": "catalog",
    "TRACE": "trace",
}


def parse(model, text):
    if hasattr(model, "model_validate_json"):  # pydantic 2
        return model.model_validate_json(text)
    return model.parse_raw(text)


def fields(model):
    """Declared field name → wire name (alias) of a model class."""
    declared = getattr(type(model), "model_fields", None)
    if declared is not None:  # pydantic 2
        return {name: (info.alias or name) for name, info in declared.items()}
    return {name: field.alias for name, field in model.__fields__.items()}


def undeclared(model, raw, path):
    """Keys of `raw` that the model does not declare, recursively, as dotted paths."""
    found = []
    # A model without fields (a state blob) is free-form by definition.
    if isinstance(model, BaseModel) and isinstance(raw, dict) and fields(model):
        by_alias = {alias: name for name, alias in fields(model).items()}
        for key, value in raw.items():
            if key not in by_alias:
                found.append(f"{path}.{key}")
                continue
            child = getattr(model, by_alias[key])
            found.extend(undeclared(child, value, f"{path}.{key}"))
    elif isinstance(model, list) and isinstance(raw, list):
        for index, (child, value) in enumerate(zip(model, raw)):
            found.extend(undeclared(child, value, f"{path}[{index}]"))
    return found


def check_message(line):
    raw = json.loads(line)
    message = parse(models.AirbyteMessage, line)
    kind = message.type.value if isinstance(message.type, enum.Enum) else message.type
    if kind not in PAYLOAD:
        raise ValueError(f"unexpected message type {kind}")
    payload = PAYLOAD[kind]
    present = [key for key in PAYLOAD.values() if key in raw]
    if present != [payload]:
        raise ValueError(f"a {kind} message must carry exactly `{payload}`, found {present}")
    extra = undeclared(message, raw, "message")
    if extra:
        raise ValueError(f"keys the protocol does not define: {', '.join(extra)}")
    if kind == "STATE":
        state = message.state
        state_type = state.type.value if isinstance(state.type, enum.Enum) else state.type
        if state_type != "STREAM" or state.stream is None or not state.stream.stream_descriptor.name:
            raise ValueError("state messages must be per-stream (type STREAM with a stream_descriptor)")
    if kind == "TRACE":
        trace = message.trace
        trace_type = trace.type.value if isinstance(trace.type, enum.Enum) else trace.type
        if trace_type == "ERROR" and (trace.error is None or trace.error.failure_type is None):
            raise ValueError("an error trace needs error.failure_type")
    return kind


def main(argv):
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    counts = {}
    if "--configured-catalog" in argv:
        path = argv[argv.index("--configured-catalog") + 1]
        with open(path, encoding="utf-8") as handle:
            parse(models.ConfiguredAirbyteCatalog, handle.read())
    with open(argv[1], encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                kind = check_message(line)
            except Exception as error:  # noqa: BLE001 - any failure is reported with its line
                print(f"line {number}: {error}\n{line[:500]}", file=sys.stderr)
                return 1
            counts[kind] = counts.get(kind, 0) + 1
    print(json.dumps(counts, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
