#!/usr/bin/env bash
# Runs every test of carerecord: formatting and lints, the unit and integration tests on the
# embedded SQLite store, and the store suite and API tests on PostgreSQL.
#
# PostgreSQL: uses the server at 127.0.0.1:5432 when one answers; otherwise installs
# (apt-get install postgresql) and starts one. Set CARERECORD_TEST_POSTGRES_URL to use another.
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
export CARERECORD_TEST_POSTGRES_URL="${CARERECORD_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/postgres}"

step() { printf '\n==> %s\n' "$*"; }

ensure_postgres() {
  if pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then
    return 0
  fi
  step "PostgreSQL is not answering on 127.0.0.1:5432: starting it"
  if ! command -v pg_ctlcluster >/dev/null 2>&1; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq postgresql >/dev/null
  fi
  local version
  version=$(ls /etc/postgresql | sort -V | tail -n 1)
  # Trust local TCP connections for the test user, as the development machines do.
  local hba="/etc/postgresql/$version/main/pg_hba.conf"
  if ! grep -q "carerecord-tests" "$hba" 2>/dev/null; then
    sed -i '1i host all all 127.0.0.1/32 trust # carerecord-tests' "$hba"
  fi
  pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
  for _ in $(seq 1 30); do
    pg_isready -q -h 127.0.0.1 -p 5432 && return 0
    sleep 1
  done
  echo "PostgreSQL did not start" >&2
  return 1
}

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy"
cargo clippy --workspace --all-targets --features carerecord-store/testsuite -- -D warnings

step "tests on the embedded SQLite store"
cargo test --workspace --features carerecord-store/testsuite

ensure_postgres
step "PostgreSQL: the store suite, the API tests and the HL7 v2 ingest tests"
CARERECORD_TEST_BACKEND=postgres cargo test -p carerecord-store-postgres -p carerecord-server -p carerecord-ingest --features carerecord-store/testsuite

# The test registers a `service` client with `carerecord client add` before starting the server
# and calls the API with the bearer token the token endpoint gives it.
step "an independent FHIR client (SMART fhirclient) against the carerecord binary, with a bearer token"
venv=target/conformance-venv
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
"$venv/bin/pip" install -q --disable-pip-version-check fhirclient==4.4.0
cargo build -p carerecord
CARERECORD_BIN=target/debug/carerecord "$venv/bin/python" -m unittest -v tests/conformance/test_fhirclient.py

# A public SMART app registered with `carerecord client add-smart` and a nurse with `user add`;
# fhirclient builds the authorisation URL (PKCE S256), exchanges the code and refreshes; the
# nurse's sign-in (TOTP computed in Python), resident choice and consent are driven with requests.
step "SMART App Launch with fhirclient: authorise, exchange, read in context, refresh, revoke"
CARERECORD_BIN=target/debug/carerecord "$venv/bin/python" -m unittest -v tests/conformance/test_smart_flow.py

step "an independent validator (fhir.resources 6.4.0, FHIR 4.0.1) on a generated sample"
fr_venv=target/fhir-resources-venv
if [ ! -x "$fr_venv/bin/python" ]; then
  python3 -m venv "$fr_venv"
fi
"$fr_venv/bin/pip" install -q --disable-pip-version-check fhir.resources==6.4.0 "pydantic<2"
sample=$(mktemp -d)
target/debug/carerecord generate --out "$sample" --patients 40 --care-homes 3 --seed 11
"$fr_venv/bin/python" tests/conformance/check_synth_with_fhir_resources.py "$sample"
rm -rf "$sample"

# Installs Debian's chromium when it is missing and the locked npm packages (playwright-core,
# @axe-core/playwright), then drives the demo's portal: roles, refusals, break-glass, axe (WCAG
# 2.2 AA) on every page, screenshots at tablet and desktop widths.
step "the care home portal in a real Chromium"
./scripts/browser-tests.sh
