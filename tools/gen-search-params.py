#!/usr/bin/env python3
"""Generate crates/search/src/registry/search_parameters.json from the FHIR R4 specification.

Usage: tools/gen-search-params.py /path/to/hl7.fhir.r4.examples/package [output.json]

Reads `Bundle-searchParams.json` and `CompartmentDefinition-patient.json` from the unpacked
package (npm `hl7.fhir.r4.examples@4.0.1`, CC0) and writes, for carerecord's resource types:

- `params`: per type (plus `Resource` for the base parameters that apply to every type), the
  search parameters with code, type, url, the FHIRPath expression reduced to the union parts
  rooted at that type, and reference targets. Sorted by code.
- `compartment`: per type, the Patient compartment parameter codes (CompartmentDefinition order).

Output is deterministic (sorted keys, one parameter per line). Python 3 standard library only.
"""

import json
import os
import sys

TYPES = [
    "AllergyIntolerance", "Binary", "Bundle", "CarePlan", "Composition", "Condition", "Consent",
    "DiagnosticReport", "DocumentReference", "Encounter", "EpisodeOfCare", "Flag", "Immunization",
    "Location", "Medication", "MedicationRequest", "MedicationStatement", "Observation",
    "Organization", "Patient", "Practitioner", "PractitionerRole", "Procedure", "Provenance",
    "RelatedPerson",
]
BASE_PARAMS = {"_id", "_lastUpdated", "_tag", "_security", "_profile", "_source"}
BASE_ROOTS = ("Resource", "DomainResource")


def split_union(expr):
    """Split on `|` that is not inside parentheses or a string literal."""
    parts, depth, quote, cur = [], 0, False, []
    for ch in expr:
        if quote:
            cur.append(ch)
            if ch == "'":
                quote = False
            continue
        if ch == "'":
            quote = True
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif ch == "|" and depth == 0:
            parts.append("".join(cur).strip())
            cur = []
            continue
        cur.append(ch)
    parts.append("".join(cur).strip())
    return [p for p in parts if p]


def root_of(part):
    p = part.lstrip("(").lstrip()
    name = []
    for ch in p:
        if ch.isalnum() or ch == "_":
            name.append(ch)
        else:
            break
    return "".join(name)


def reduce_expr(expr, roots):
    return " | ".join(p for p in split_union(expr or "") if root_of(p) in roots)


def main():
    if len(sys.argv) < 2:
        sys.exit("usage: gen-search-params.py PACKAGE_DIR [OUTPUT]")
    pkg = sys.argv[1]
    here = os.path.dirname(os.path.abspath(__file__))
    out = sys.argv[2] if len(sys.argv) > 2 else os.path.join(
        here, "..", "crates", "search", "src", "registry", "search_parameters.json")

    with open(os.path.join(pkg, "Bundle-searchParams.json"), encoding="utf-8") as f:
        bundle = json.load(f)
    with open(os.path.join(pkg, "CompartmentDefinition-patient.json"), encoding="utf-8") as f:
        compartment_def = json.load(f)

    params = {t: {} for t in ["Resource"] + TYPES}
    for entry in bundle["entry"]:
        sp = entry["resource"]
        code, bases = sp["code"], sp.get("base", [])
        if any(b in BASE_ROOTS for b in bases):
            if code not in BASE_PARAMS:
                continue
            key, roots = "Resource", set(BASE_ROOTS)
        else:
            key, roots = None, None
        targets = sp.get("target", [])
        for t in ([key] if key else [b for b in bases if b in params]):
            expr = reduce_expr(sp.get("expression", ""), roots or {t})
            if not expr and sp["type"] not in ("special", "composite"):
                print(f"warning: {t}.{code} has no expression for its type", file=sys.stderr)
            params[t][code] = {
                "code": code,
                "expression": expr,
                "targets": sorted(targets),
                "type": sp["type"],
                "url": sp["url"],
            }

    compartment = {}
    for res in compartment_def.get("resource", []):
        if res["code"] in TYPES and res.get("param"):
            compartment[res["code"]] = list(res["param"])

    lines = ["{", '"compartment": ' + json.dumps(compartment, sort_keys=True, separators=(",", ":")) + ",",
             '"params": {']
    type_keys = sorted(params)
    for ti, t in enumerate(type_keys):
        lines.append(json.dumps(t) + ": [")
        codes = sorted(params[t])
        for ci, c in enumerate(codes):
            sep = "," if ci + 1 < len(codes) else ""
            lines.append(json.dumps(params[t][c], sort_keys=True, separators=(",", ":"),
                                    ensure_ascii=False) + sep)
        lines.append("]" + ("," if ti + 1 < len(type_keys) else ""))
    lines.append("}")
    lines.append("}")
    with open(out, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    total = sum(len(v) for v in params.values())
    print(f"wrote {total} parameters for {len(params)} types to {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
