#!/usr/bin/env bash
# Headless Chromium and its WebDriver for the Neo4j Browser test (tests/graph/test_browser_neo4j.py),
# from Debian's packages. Idempotent: does nothing when /usr/bin/chromium and /usr/bin/chromedriver
# are both there. Needs root (or sudo) and an apt mirror; CI runs it before `make test`.
set -euo pipefail

if [[ -x /usr/bin/chromium && -x /usr/bin/chromedriver ]]; then
  echo "chromium: already installed ($(/usr/bin/chromium --version 2>/dev/null | head -n1))"
  exit 0
fi
SUDO=""
if [[ $(id -u) -ne 0 ]]; then
  command -v sudo >/dev/null || { echo "install-chromium.sh: need root or sudo for apt-get" >&2; exit 1; }
  SUDO="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends chromium chromium-driver >/dev/null
echo "chromium: installed $(/usr/bin/chromium --version 2>/dev/null | head -n1); $(/usr/bin/chromedriver --version | head -n1)"
