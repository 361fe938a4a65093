"""An independent FHIR client against a real carerecord server.

Uses SMART's `fhirclient` (PyPI), whose R4 models check every response's structure as they
parse it, to create, read, update, search and page through the API of the `carerecord` binary.
The API needs a bearer token: a `service` client is registered with `carerecord client add`
before the server starts, and its token comes from the token endpoint (client_secret_basic).

    python3 -m unittest tests/conformance/test_fhirclient.py   (CARERECORD_BIN names the binary)
"""

import base64
import json
import os
import socket
import subprocess
import tempfile
import time
import unittest
import urllib.request

from fhirclient import client
from fhirclient.models.bundle import Bundle
from fhirclient.models.capabilitystatement import CapabilityStatement
from fhirclient.models.observation import Observation
from fhirclient.models.patient import Patient

NHS = "https://fhir.nhs.uk/Id/nhs-number"


def check_digit(nine):
    total = sum(int(d) * w for d, w in zip(nine, range(10, 1, -1)))
    c = 11 - total % 11
    return None if c == 10 else (0 if c == 11 else c)


def nhs_numbers(n):
    """Synthetic NHS numbers in the 999 test range with valid check digits."""
    out, i = [], 0
    while len(out) < n:
        nine = f"999{i:06d}"
        c = check_digit(nine)
        if c is not None:
            out.append(nine + str(c))
        i += 1
    return out


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class CarerecordServer:
    def __enter__(self):
        binary = os.environ.get("CARERECORD_BIN", "target/debug/carerecord")
        self.dir = tempfile.TemporaryDirectory()
        self.port = free_port()
        registered = subprocess.run(
            [binary, "client", "add", "--client-id", "conformance", "--role", "service",
             "--org", "programme", "--secret", "--data-dir", self.dir.name],
            check=True, capture_output=True, text=True)
        self.client_id = "conformance"
        self.client_secret = next(
            line.split(":", 1)[1].strip() for line in registered.stdout.splitlines()
            if line.startswith("client_secret:"))
        self.proc = subprocess.Popen(
            [binary, "serve", "--data-dir", self.dir.name,
             "--listen", f"127.0.0.1:{self.port}", "--metrics-listen", "off"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health/ready", timeout=1):
                    self.token = self.get_token()
                    return self
            except OSError:
                time.sleep(0.1)
        self.proc.kill()
        raise RuntimeError("carerecord did not become ready")

    def get_token(self):
        """OAuth2 client credentials with client_secret_basic (RFC 6749 §4.4)."""
        basic = base64.b64encode(f"{self.client_id}:{self.client_secret}".encode()).decode()
        req = urllib.request.Request(
            f"http://127.0.0.1:{self.port}/auth/token",
            data=b"grant_type=client_credentials&scope=system%2F*.cruds",
            headers={"Authorization": f"Basic {basic}",
                     "Content-Type": "application/x-www-form-urlencoded"})
        with urllib.request.urlopen(req, timeout=10) as resp:
            return json.load(resp)["access_token"]

    def __exit__(self, *exc):
        self.proc.terminate()
        self.proc.wait(timeout=10)
        self.dir.cleanup()


class IndependentClientTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.server_process = CarerecordServer().__enter__()
        base = f"http://127.0.0.1:{cls.server_process.port}/fhir/"
        cls.smart = client.FHIRClient(settings={"app_id": "carerecord-conformance", "api_base": base})
        cls.server = cls.smart.server
        cls.server.session.headers["Authorization"] = f"Bearer {cls.server_process.token}"

    @classmethod
    def tearDownClass(cls):
        cls.server_process.__exit__(None, None, None)

    def new_patient(self, nhs, family):
        p = Patient({
            "identifier": [{"system": NHS, "value": nhs}],
            "name": [{"family": family, "given": ["Test"]}],
            "gender": "female",
            "birthDate": "1939-05-01",
        })
        created = p.create(self.server)
        return Patient(created)

    def test_the_capability_statement_parses_as_r4(self):
        cs = CapabilityStatement.read_from("metadata", self.server)
        self.assertEqual(cs.fhirVersion, "4.0.1")
        types = {r.type for r in cs.rest[0].resource}
        self.assertIn("Observation", types)

    def test_create_read_and_update_round_trip(self):
        created = self.new_patient(nhs_numbers(1)[0], "Adeyemi")
        self.assertTrue(created.id)
        read = Patient.read(created.id, self.server)
        self.assertEqual(read.name[0].family, "Adeyemi")
        self.assertEqual(read.meta.versionId, "1")
        read.name[0].family = "Adeyemi-Cole"
        updated = Patient(read.update(self.server))
        self.assertEqual(updated.meta.versionId, "2")
        self.assertEqual(Patient.read(created.id, self.server).name[0].family, "Adeyemi-Cole")

    def test_search_by_identifier_finds_exactly_one(self):
        nhs = nhs_numbers(3)[2]
        created = self.new_patient(nhs, "Kowalski")
        found = list(Patient.where(struct={"identifier": f"{NHS}|{nhs}"}).perform_resources_iter(self.server))
        self.assertEqual([p.id for p in found], [created.id])

    def test_paging_follows_next_links_to_every_match(self):
        p = self.new_patient(nhs_numbers(5)[4], "Haddad")
        for i in range(23):
            Observation({
                "status": "final",
                "code": {"coding": [{"system": "http://loinc.org", "code": "2951-2", "display": "Sodium"}]},
                "subject": {"reference": f"Patient/{p.id}"},
                "effectiveDateTime": f"2026-10-{i + 1:02d}",
                "valueQuantity": {"value": 135 + i % 5, "unit": "mmol/L",
                                  "system": "http://unitsofmeasure.org", "code": "mmol/L"},
            }).create(self.server)
        search = Observation.where(struct={"subject": f"Patient/{p.id}", "_count": "5", "_sort": "date"})
        pages = list(search.perform_iter(self.server))
        self.assertEqual(len(pages), 5)
        self.assertIsInstance(pages[0], Bundle)
        self.assertEqual(pages[0].total, 23)
        seen = [e.resource.id for b in pages for e in (b.entry or [])]
        self.assertEqual(len(seen), 23)
        self.assertEqual(len(set(seen)), 23)
        dates = [e.resource.effectiveDateTime.isostring for b in pages for e in (b.entry or [])]
        self.assertEqual(dates, sorted(dates))


if __name__ == "__main__":
    unittest.main()
