#!/usr/bin/env bash
# The care home portal in a real Chromium (tests/browser): installs Debian's chromium when it
# is missing, installs the locked npm packages, starts `carerecord demo` on a free port with a
# temporary data directory, and runs the tests. Screenshots go to target/browser-screenshots.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -x /usr/bin/chromium ]; then
  echo "installing chromium (Debian package)…"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi

(cd tests/browser && npm ci --no-audit --no-fund --loglevel=error)
nice cargo build -q -p carerecord

DATA=$(mktemp -d)
LOG="$DATA/demo.log"
cleanup() {
  if [ -n "${DEMO_PID:-}" ]; then kill "$DEMO_PID" 2>/dev/null || true; wait "$DEMO_PID" 2>/dev/null || true; fi
  rm -rf "$DATA"
}
trap cleanup EXIT

# Port 0: the demo picks a free port and prints it, so nothing races for one.
target/debug/carerecord demo --listen 127.0.0.1:0 --metrics-listen off --mllp-listen off \
  --data-dir "$DATA/store" --accounts-file "$DATA/accounts.json" >"$LOG" 2>&1 &
DEMO_PID=$!

BASE=""
while [ -z "$BASE" ]; do
  if ! kill -0 "$DEMO_PID" 2>/dev/null; then
    echo "carerecord demo stopped before it was ready:" >&2
    cat "$LOG" >&2
    exit 1
  fi
  BASE=$(sed -n 's|.*the care home portal at \(http://[0-9.:]*\)/.*|\1|p' "$LOG" | head -1)
  [ -n "$BASE" ] || sleep 1
done
echo "demo ready at $BASE"

mkdir -p target/browser-screenshots
BASE_URL="$BASE" ACCOUNTS="$DATA/accounts.json" SCREENSHOTS="$PWD/target/browser-screenshots" \
  node --test tests/browser/portal.test.mjs
