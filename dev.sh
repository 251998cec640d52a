#!/usr/bin/env bash
# The two README commands:  ./dev.sh app   and   ./dev.sh test
# Both create ./.venv on first use (torch==2.13.0 first, then the pinned rest) and reuse it.
set -euo pipefail
cd "$(dirname "$0")"

VENV=.venv
PY=$(command -v python3.11 || command -v python3)

setup() {
  if [ ! -x "$VENV/bin/python" ]; then
    "$PY" -m venv "$VENV"
  fi
  local stamp
  stamp=$(cat pyproject.toml constraints.txt | sha1sum | cut -c1-16)
  if [ "$(cat "$VENV/.deps-stamp" 2>/dev/null)" != "$stamp" ]; then
    "$VENV/bin/python" -m pip install --quiet --upgrade pip
    # The local CPU wheel; installing it first keeps pip from fetching CUDA builds.
    "$VENV/bin/python" -m pip install --quiet torch==2.13.0
    "$VENV/bin/python" -m pip install --quiet -c constraints.txt -e ".[test]"
    echo "$stamp" > "$VENV/.deps-stamp"
  fi
}

# Browser tests drive Debian's chromium. Install it when it is missing and we can (root with
# apt); otherwise stop at once with the exact command, rather than failing tests one by one.
need_chromium() {
  [ -x /usr/bin/chromium ] && return 0
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing Debian's chromium for the browser tests..." >&2
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null
    [ -x /usr/bin/chromium ] && return 0
  fi
  echo "error: the browser tests need /usr/bin/chromium; install it with:" >&2
  echo "  sudo apt-get update && sudo apt-get install -y --no-install-recommends chromium" >&2
  exit 1
}

# Tests that need a database start their own PostgreSQL cluster (tests/postgres.py) from
# Debian's server package; install it the same way when it is missing.
need_postgres() {
  compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null && return 0
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing Debian's postgresql for the database tests..." >&2
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql >/dev/null
    compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null && return 0
  fi
  echo "error: the database tests need PostgreSQL's server binaries; install them with:" >&2
  echo "  sudo apt-get update && sudo apt-get install -y --no-install-recommends postgresql" >&2
  exit 1
}

case "${1:-}" in
  app)
    shift
    setup
    exec "$VENV/bin/streamlit" run app.py "$@"
    ;;
  test)
    shift
    need_chromium
    need_postgres
    setup
    # Two pytest workers (pytest-xdist): one keeps both cores busy while the other waits on a
    # browser, a server or a subprocess. Each worker has its own app server, Chromium and
    # PostgreSQL (session fixtures); an xdist_group keeps a module's shared servers on one.
    # DLOPT_TEST_WORKERS=0 runs in this process; options after `test` still win (-n 0).
    exec "$VENV/bin/python" -m pytest -n "${DLOPT_TEST_WORKERS:-2}" --dist loadgroup "$@"
    ;;
  bench)
    shift
    setup
    exec "$VENV/bin/python" -m bench "$@"
    ;;
  *)
    echo "usage: ./dev.sh app [streamlit options] | test [pytest options] | bench [names]" >&2
    exit 2
    ;;
esac
