#!/usr/bin/env python3
"""Generate crates/fhir/src/validate/elements.json from the FHIR R4 StructureDefinition snapshots.

Usage: tools/gen-validation-tables.py <dir with StructureDefinition-*.json> [output]

The input is the npm package hl7.fhir.r4.examples@4.0.1 (CC0), unpacked. The output is a
deterministic JSON object:

    {"fhirVersion": "4.0.1",
     "primitives": [...primitive type codes...],
     "resources": [...the resource types carerecord supports...],
     "types": {"Patient": {"active": [0, "1", "boolean", null], ...},
               "Patient.contact": {...},                # inline BackboneElement
               "Observation": {"valueQuantity": [0, "1", "Quantity", "value"], ...}, ...}}

Each element is `[min, max, type, choiceGroup]`: `max` is "1" or "*" (or another number as a
string), `type` a primitive code, a complex datatype name, an inline element path such as
`Patient.contact` (also used for `contentReference`), or `Resource`; `choiceGroup` is the
`value` of `value[x]` for expanded choice elements and null otherwise.
"""

import json
import os
import sys

# The resource types carerecord stores, plus AuditEvent, which it only renders (from the audit
# trail) but validates like the rest.
RESOURCES = [
    "AllergyIntolerance", "AuditEvent", "Binary", "Bundle", "CarePlan", "Composition", "Condition", "Consent",
    "DiagnosticReport", "DocumentReference", "Encounter", "EpisodeOfCare", "Flag", "Immunization",
    "Location", "Medication", "MedicationRequest", "MedicationStatement", "Observation",
    "Organization", "Patient", "Practitioner", "PractitionerRole", "Procedure", "Provenance",
    "RelatedPerson",
]

FHIR_TYPE_EXT = "http://hl7.org/fhir/StructureDefinition/structuredefinition-fhir-type"


def load(directory, name):
    path = os.path.join(directory, "StructureDefinition-%s.json" % name)
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def type_code(t):
    code = t["code"]
    if code.startswith("http://hl7.org/fhirpath/System."):
        for ext in t.get("extension", []):
            if ext.get("url") == FHIR_TYPE_EXT:
                return ext["valueUrl"]
        return {"String": "string", "Boolean": "boolean", "Integer": "integer",
                "Decimal": "decimal", "Date": "date", "DateTime": "dateTime",
                "Time": "time"}[code.rsplit(".", 1)[1]]
    return code


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    directory = sys.argv[1]
    here = os.path.dirname(os.path.abspath(__file__))
    default_out = os.path.join(here, "..", "crates", "fhir", "src", "validate", "elements.json")
    out = sys.argv[2] if len(sys.argv) > 2 else default_out

    primitives = set()
    types = {}
    queue = list(RESOURCES) + ["Element"]
    seen = set(queue)
    while queue:
        name = queue.pop(0)
        sd = load(directory, name)
        if sd["kind"] == "primitive-type":
            primitives.add(name)
            continue
        is_resource = sd["kind"] == "resource"
        elements = sd["snapshot"]["element"]
        root = elements[0]["path"]
        paths = [e["path"] for e in elements]
        types.setdefault(name, {})

        def owner(parent_path):
            # The table key of the type holding children of `parent_path`.
            return name if parent_path == root else name + parent_path[len(root):]

        for i, e in enumerate(elements[1:], start=1):
            path = e["path"]
            if e.get("max") == "0":
                continue
            parent, _, elem = path.rpartition(".")
            table = types.setdefault(owner(parent), {})
            has_children = any(p.startswith(path + ".") for p in paths[i + 1:])
            if "contentReference" in e:
                ref = e["contentReference"].lstrip("#")
                codes = [owner(ref)]
            elif has_children:
                codes = [owner(path)]
            else:
                codes = [type_code(t) for t in e.get("type", [])]
                if is_resource and parent == root and elem == "id":
                    codes = ["id"]
            codes = list(dict.fromkeys(codes))
            entry_min = e.get("min", 0)
            entry_max = e.get("max", "1")
            if elem.endswith("[x]"):
                group = elem[:-3]
                for c in codes:
                    table[group + c[0].upper() + c[1:]] = [entry_min, entry_max, c, group]
            else:
                if len(codes) != 1:
                    sys.exit("%s: expected one type, got %r" % (path, codes))
                table[elem] = [entry_min, entry_max, codes[0], None]
            for c in codes:
                if "." in c or c in ("Resource",) or c in seen:
                    continue
                seen.add(c)
                queue.append(c)

    doc = {
        "fhirVersion": "4.0.1",
        "primitives": sorted(primitives),
        "resources": RESOURCES,
        "types": types,
    }
    # One type per line: deterministic, compact, and reviewable in diffs.
    lines = ["{"]
    lines.append('"fhirVersion": %s,' % json.dumps(doc["fhirVersion"]))
    lines.append('"primitives": %s,' % json.dumps(doc["primitives"], separators=(",", ":")))
    lines.append('"resources": %s,' % json.dumps(doc["resources"], separators=(",", ":")))
    lines.append('"types": {')
    names = sorted(types)
    for n, tname in enumerate(names):
        body = json.dumps(types[tname], sort_keys=True, separators=(",", ":"))
        comma = "," if n + 1 < len(names) else ""
        lines.append("%s:%s%s" % (json.dumps(tname), body, comma))
    lines.append("}")
    lines.append("}")
    with open(out, "w", encoding="utf-8", newline="\n") as f:
        f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
