#!/usr/bin/env bash
# Install the servers the test suite starts itself (PostgreSQL, headless Chromium) when they are missing.
# As root with apt-get this installs them; otherwise it says what to install and the tests that need
# them skip (under CI=true those skips fail the run).
set -euo pipefail

missing=()
pg_bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
if ! command -v initdb >/dev/null 2>&1 && [ -z "$pg_bin" ]; then
  missing+=(postgresql)
fi
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v chromedriver >/dev/null 2>&1 || missing+=(chromium-driver)

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing ${missing[*]} (needed by the server and browser tests)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  echo "note: ${missing[*]} not installed; the tests that need them will be skipped" >&2
  echo "      (Debian/Ubuntu: sudo apt-get install ${missing[*]})" >&2
fi
