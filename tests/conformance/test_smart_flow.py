"""SMART App Launch against the carerecord binary, driven by SMART's own `fhirclient`.

A public app is registered with `carerecord client add-smart`, a nurse with `carerecord user
add`. fhirclient discovers the endpoints from the CapabilityStatement, builds the
authorisation URL (with PKCE S256) and, given the callback URL, exchanges the code and
refreshes. The person's part — signing in with password and TOTP (RFC 6238, computed here),
choosing a resident, allowing — is done with `requests`, as a browser without JavaScript would.

    python3 -m unittest tests/conformance/test_smart_flow.py   (CARERECORD_BIN names the binary)
"""

import base64
import hashlib
import hmac
import html.parser
import json
import os
import socket
import struct
import subprocess
import tempfile
import time
import unittest
import urllib.parse

import requests
from fhirclient import client
from fhirclient.models.observation import Observation

NHS = "https://fhir.nhs.uk/Id/nhs-number"
SOURCE_TAG = "https://fhir.carerecord.example/CodeSystem/source-organisation"
REDIRECT = "http://127.0.0.1:1/callback"
SCOPE = "launch/patient patient/*.rs openid fhirUser offline_access"


def totp(secret_b32, at=None):
    """RFC 6238: HMAC-SHA-1 over the 30-second step, dynamic truncation, 6 digits."""
    key = base64.b32decode(secret_b32.upper() + "=" * (-len(secret_b32) % 8))
    step = int((at or time.time()) // 30)
    digest = hmac.new(key, struct.pack(">Q", step), hashlib.sha1).digest()
    offset = digest[-1] & 0x0F
    code = (struct.unpack(">I", digest[offset:offset + 4])[0] & 0x7FFFFFFF) % 1_000_000
    return f"{code:06d}"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(binary, *args):
    out = subprocess.run([binary, *args], check=True, capture_output=True, text=True).stdout
    return dict(line.split(": ", 1) for line in out.splitlines() if ": " in line)


class Form(html.parser.HTMLParser):
    """The hidden fields and the radio choices (value → label) of a page."""

    def __init__(self, text):
        super().__init__()
        self.hidden, self.radios, self._label_for, self._ids = [], {}, None, {}
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "input" and a.get("type") == "hidden":
            self.hidden.append((a["name"], a.get("value", "")))
        elif tag == "input" and a.get("type") == "radio":
            self._ids[a["id"]] = a["value"]
        elif tag == "label" and a.get("for") in self._ids:
            self._label_for = self._ids[a["for"]]

    def handle_data(self, data):
        if self._label_for is not None:
            self.radios[self._label_for] = data.strip()
            self._label_for = None


class SmartFlowTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        binary = os.environ.get("CARERECORD_BIN", "target/debug/carerecord")
        cls.dir = tempfile.TemporaryDirectory()
        data = ["--data-dir", cls.dir.name]
        service = run(binary, "client", "add", "--client-id", "loader", "--role", "service",
                      "--org", "programme", "--secret", *data)
        app = run(binary, "client", "add-smart", "--client-id", "conformance-app",
                  "--name", "Conformance App", "--redirect-uri", REDIRECT, "--scope", SCOPE, *data)
        assert "client_secret" not in app, "a public app has no secret"
        nurse = run(binary, "user", "add", "--username", "nurse", "--name", "Test Nurse",
                    "--role", "registered-nurse", "--org", "home-a", *data)
        cls.password, cls.totp_secret = nurse["password"], nurse["totp_secret"]
        port = free_port()
        cls.origin = f"http://127.0.0.1:{port}"
        cls.base = f"{cls.origin}/fhir"
        cls.proc = subprocess.Popen(
            [binary, "serve", *data, "--listen", f"127.0.0.1:{port}", "--metrics-listen", "off"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 30
        while True:
            try:
                requests.get(f"{cls.origin}/health/ready", timeout=1).raise_for_status()
                break
            except requests.RequestException:
                if time.time() > deadline:
                    cls.proc.kill()
                    raise
                time.sleep(0.1)
        token = requests.post(f"{cls.origin}/auth/token", auth=("loader", service["client_secret"]),
                              data={"grant_type": "client_credentials"}).json()["access_token"]
        cls.population(token)

    @classmethod
    def tearDownClass(cls):
        cls.proc.terminate()
        cls.proc.wait(timeout=10)
        cls.dir.cleanup()

    @classmethod
    def population(cls, token):
        """Two homes; two residents at home A (the nurse's), one at home B; a result each."""
        def put(body, source):
            body["meta"] = {"tag": [{"system": SOURCE_TAG, "code": source}]}
            r = requests.put(f"{cls.base}/{body['resourceType']}/{body['id']}", json=body,
                             headers={"Authorization": f"Bearer {token}",
                                      "Content-Type": "application/fhir+json"})
            assert r.ok, r.text

        for org, ods in [("home-a", "ZHA1"), ("home-b", "ZHB1")]:
            put({"resourceType": "Organization", "id": org, "name": org,
                 "identifier": [{"system": "https://fhir.nhs.uk/Id/ods-organization-code",
                                 "value": ods}]}, "ZDIR")
        for pid, home, ods, nhs, family in [("p-here", "home-a", "ZHA1", "9990000018", "Here"),
                                            ("p-next", "home-a", "ZHA1", "9990000034", "Nextdoor"),
                                            ("p-other", "home-b", "ZHB1", "9990000026", "Elsewhere")]:
            put({"resourceType": "Patient", "id": pid, "birthDate": "1941-03-27",
                 "identifier": [{"system": NHS, "value": nhs}],
                 "name": [{"use": "official", "family": family, "given": ["Ada"]}]}, "ZGP1")
            put({"resourceType": "EpisodeOfCare", "id": f"{pid}-stay", "status": "active",
                 "patient": {"reference": f"Patient/{pid}"},
                 "managingOrganization": {"reference": f"Organization/{home}"},
                 "period": {"start": "2025-01-01"}}, ods)
            put({"resourceType": "Observation", "id": f"{pid}-lab", "status": "final",
                 "code": {"coding": [{"system": "http://loinc.org", "code": "2823-3"}]},
                 "subject": {"reference": f"Patient/{pid}"},
                 "effectiveDateTime": "2026-11-20T09:00:00Z",
                 "valueQuantity": {"value": 4.1, "unit": "mmol/L"}}, "ZLAB1")

    def smart_client(self):
        return client.FHIRClient(settings={
            "app_id": "conformance-app", "api_base": self.base + "/",
            "redirect_uri": REDIRECT, "scope": SCOPE.replace("launch/patient ", ""),
        })

    # One browser for the whole class: the first authorisation signs in (a TOTP code is
    # accepted once, so signing in again within the same 30 s would be refused); later ones
    # find the portal session and go straight to the question.
    browser = None

    def authorise(self, smart, decision="allow"):
        """Follows fhirclient's authorisation URL as the nurse; returns the callback URL."""
        own = {"Origin": self.origin}
        url = smart.authorize_url
        self.assertTrue(url.startswith(f"{self.origin}/auth/authorize?"), url)
        query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(url).query))
        self.assertEqual(query["code_challenge_method"], "S256")
        self.assertIn("launch/patient", query["scope"])

        if SmartFlowTest.browser is None:
            browser = requests.Session()
            r = browser.get(url, allow_redirects=False)
            self.assertEqual(r.status_code, 303, r.text)
            sign_in = urllib.parse.urljoin(self.origin, r.headers["Location"])
            self.assertIn("/sign-in?next=", sign_in)
            form = dict(Form(browser.get(sign_in).text).hidden)
            r = browser.post(f"{self.origin}/sign-in", headers=own, allow_redirects=False, data={
                "username": "nurse", "password": self.password,
                "totp": totp(self.totp_secret), "next": form["next"]})
            self.assertEqual(r.status_code, 303, r.text)
            self.assertEqual(urllib.parse.urljoin(self.origin, r.headers["Location"]), url)
            SmartFlowTest.browser = browser
        browser = SmartFlowTest.browser
        consent = browser.get(url, allow_redirects=False)
        self.assertEqual(consent.status_code, 200, consent.text)
        self.assertIn("Conformance App", consent.text)
        page = Form(consent.text)
        labels = page.radios
        self.assertTrue(any("Ada Here" in v for v in labels.values()), labels)
        self.assertTrue(any("Ada Nextdoor" in v for v in labels.values()), labels)
        self.assertFalse(any("Elsewhere" in v for v in labels.values()), "another home's resident")
        chosen = next(k for k, v in labels.items() if "Ada Here" in v)
        r = browser.post(f"{self.origin}/auth/authorize", headers=own, allow_redirects=False,
                         data=page.hidden + [("decision", decision), ("chosen_patient", chosen)])
        self.assertEqual(r.status_code, 303, r.text)
        return r.headers["Location"]

    def test_authorise_exchange_read_refresh_and_revoke_with_fhirclient(self):
        smart = self.smart_client()
        callback = self.authorise(smart)
        self.assertTrue(callback.startswith(REDIRECT + "?"), callback)
        smart.handle_callback(callback)
        self.assertEqual(smart.patient_id, "p-here")
        self.assertEqual(smart.patient.name[0].family, "Here")
        found = list(Observation.where(struct={"patient": "p-here"}).perform_resources_iter(smart.server))
        self.assertEqual([o.id for o in found], ["p-here-lab"])
        token = smart.server.auth.access_token
        claims = json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "=="))
        self.assertEqual(claims["patient"], "p-here")
        self.assertEqual(claims["client_id"], "conformance-app")

        # Refresh through fhirclient: a new access token and a new refresh token.
        first_refresh = smart.server.auth.refresh_token
        self.assertTrue(smart.reauthorize())
        self.assertNotEqual(smart.server.auth.refresh_token, first_refresh)
        self.assertNotEqual(smart.server.auth.access_token, token)
        self.assertEqual(smart.patient_id, "p-here")
        self.assertEqual(smart.patient.id, "p-here")

        # The spent refresh token is refused.
        r = requests.post(f"{self.origin}/auth/token", data={
            "grant_type": "refresh_token", "client_id": "conformance-app",
            "refresh_token": first_refresh})
        self.assertEqual(r.status_code, 400)
        self.assertEqual(r.json()["error"], "invalid_grant")
        # …and its family (the token fhirclient holds now) was revoked with it.
        r = requests.get(f"{self.base}/Patient/p-here",
                         headers={"Authorization": f"Bearer {smart.server.auth.access_token}"})
        self.assertEqual(r.status_code, 401)

    def test_revocation_ends_a_token(self):
        smart = self.smart_client()
        smart.handle_callback(self.authorise(smart))
        token = smart.server.auth.access_token
        headers = {"Authorization": f"Bearer {token}"}
        self.assertEqual(requests.get(f"{self.base}/Patient/p-here", headers=headers).status_code, 200)
        r = requests.post(f"{self.origin}/auth/revoke",
                          data={"token": token, "client_id": "conformance-app"})
        self.assertEqual(r.status_code, 200)
        self.assertEqual(requests.get(f"{self.base}/Patient/p-here", headers=headers).status_code, 401)

    def test_saying_no_returns_access_denied_to_the_app(self):
        smart = self.smart_client()
        callback = self.authorise(smart, decision="deny")
        query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(callback).query))
        self.assertEqual(query["error"], "access_denied")
        with self.assertRaises(Exception):
            smart.handle_callback(callback)

    def test_smart_configuration_lists_what_works(self):
        conf = requests.get(f"{self.base}/.well-known/smart-configuration").json()
        self.assertEqual(conf["code_challenge_methods_supported"], ["S256"])
        self.assertEqual(conf["authorization_endpoint"], f"{self.origin}/auth/authorize")
        for cap in ["launch-standalone", "launch-ehr", "client-public", "context-standalone-patient",
                    "permission-offline", "sso-openid-connect"]:
            self.assertIn(cap, conf["capabilities"])
        jwks = requests.get(conf["jwks_uri"]).json()
        self.assertEqual(jwks["keys"][0]["alg"], "ES256")

    def test_reads_outside_the_patient_context_are_refused(self):
        smart = self.smart_client()
        smart.handle_callback(self.authorise(smart))
        headers = {"Authorization": f"Bearer {smart.server.auth.access_token}"}
        # The nurse may see p-next, but the app was given p-here only.
        r = requests.get(f"{self.base}/Patient/p-next", headers=headers)
        self.assertIn(r.status_code, (403, 404))
        r = requests.get(f"{self.base}/Observation", params={"patient": "p-next"}, headers=headers)
        self.assertTrue(r.status_code in (403, 404) or r.json().get("total", 0) == 0)


if __name__ == "__main__":
    unittest.main()
