#!/usr/bin/env python3
"""Validate generated FHIR R4 resources with an independent validator.

Reads the NDJSON (one resource per line) or JSON (one resource, e.g. a transaction Bundle)
files given on the command line -- directories are searched for *.ndjson and *.json -- and
parses every resource with the Python package fhir.resources 6.4.0 (FHIR 4.0.1). For a Bundle
the entries are checked as part of it. Prints each failure (file, line, resource type/id, the
validator's message) and a summary; exits 1 on any failure, 2 on bad usage.

    python3 -m venv /tmp/fr && /tmp/fr/bin/pip install fhir.resources==6.4.0 "pydantic<2"   # 6.4.0 needs pydantic 1
    cargo run -p carerecord-synth --example dump -- /tmp/synth
    /tmp/fr/bin/python tests/conformance/check_synth_with_fhir_resources.py /tmp/synth
"""

import json
import sys
from collections import Counter
from pathlib import Path

try:
    from fhir.resources import construct_fhir_element
except ImportError:  # pragma: no cover
    sys.exit('needs fhir.resources 6.4.0 with pydantic 1: pip install fhir.resources==6.4.0 "pydantic<2"')


def files_of(args):
    for arg in args:
        p = Path(arg)
        if p.is_dir():
            yield from sorted(x for x in p.rglob("*") if x.suffix in (".ndjson", ".json"))
        else:
            yield p


def records(path):
    """(line number, parsed JSON or exception) for each resource in the file."""
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".ndjson":
        for n, line in enumerate(text.splitlines(), 1):
            if line.strip():
                try:
                    yield n, json.loads(line)
                except json.JSONDecodeError as e:
                    yield n, e
    else:
        try:
            yield 1, json.loads(text)
        except json.JSONDecodeError as e:
            yield 1, e


def main(argv):
    if not argv:
        print(__doc__, file=sys.stderr)
        return 2
    ok = Counter()
    failures = 0
    for path in files_of(argv):
        for line, res in records(path):
            if isinstance(res, Exception):
                failures += 1
                print(f"{path}:{line}: not JSON: {res}")
                continue
            rt = res.get("resourceType") if isinstance(res, dict) else None
            try:
                construct_fhir_element(rt, res)
                ok[rt] += 1
            except Exception as e:  # the validator raises pydantic errors and others
                failures += 1
                rid = res.get("id", "?") if isinstance(res, dict) else "?"
                msg = " ".join(str(e).split())
                print(f"{path}:{line}: {rt}/{rid}: {msg[:2000]}")
    for rt, n in sorted(ok.items()):
        print(f"ok {rt}: {n}")
    print(f"{sum(ok.values())} valid, {failures} invalid")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
