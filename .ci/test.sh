#!/usr/bin/env bash
# Install what the tests need (apt-get only where missing), then run every test:
# widget unit tests (node), lint and types, and the whole pytest suite (store
# contract on real Redis and Redis Cluster, end-to-end, browser, ops).
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

missing=()
command -v redis-server >/dev/null || missing+=(redis-server)
command -v redis-cli >/dev/null || missing+=(redis-tools)
command -v prometheus >/dev/null && command -v promtool >/dev/null || missing+=(prometheus)
[ -x /usr/bin/chromium ] || missing+=(chromium)
# The dashboard's layout tests measure text: one known font with Vietnamese glyphs.
# (no pipe into grep -q: under pipefail, fc-list killed by SIGPIPE would read as missing)
[ -n "$(fc-list "Noto Sans" 2>/dev/null)" ] || missing+=(fonts-noto-core)
command -v nginx >/dev/null || missing+=(nginx)
command -v node >/dev/null || missing+=(nodejs)
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

python3 -m venv .venv
.venv/bin/pip install -q --upgrade pip
.venv/bin/pip install -q -e '.[test]' -r tests/ops/requirements.txt
export PATH="$PWD/.venv/bin:$PATH"

echo "== widget unit tests (node --test)"
node --test frontend-widget/test/

echo "== lint and types"
ruff check service tests
mypy

echo "== pytest"
python -m pytest -q -p no:cacheprovider "$@"
