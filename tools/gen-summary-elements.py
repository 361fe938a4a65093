#!/usr/bin/env python3
"""Writes crates/fhir/src/summary_elements.json: for each resource type carerecord stores, the
top-level elements the R4 specification marks isSummary (what `_summary=true` keeps) and those
with min >= 1 (kept by `_summary=text`).

Usage: tools/gen-summary-elements.py <unpacked hl7.fhir.r4.examples package dir>
"""
import json, os, sys

TYPES = """AllergyIntolerance Binary Bundle CarePlan Composition Condition Consent DiagnosticReport
DocumentReference Encounter EpisodeOfCare Flag Immunization Location Medication MedicationRequest
MedicationStatement Observation Organization Patient Practitioner PractitionerRole Procedure
Provenance RelatedPerson""".split()

def main(pkg):
    out = {}
    for t in TYPES:
        sd = json.load(open(os.path.join(pkg, f"StructureDefinition-{t}.json")))
        summary, mandatory = [], []
        for e in sd["snapshot"]["element"]:
            parts = e["path"].split(".")
            if len(parts) != 2:
                continue
            name = parts[1].replace("[x]", "")
            if e.get("isSummary"):
                summary.append(name)
            if e.get("min", 0) >= 1:
                mandatory.append(name)
        out[t] = {"summary": sorted(set(summary)), "mandatory": sorted(set(mandatory))}
    path = os.path.join(os.path.dirname(__file__), "..", "crates", "fhir", "src", "summary_elements.json")
    with open(path, "w") as f:
        json.dump(out, f, indent=0, sort_keys=True)
        f.write("\n")

if __name__ == "__main__":
    main(sys.argv[1])
