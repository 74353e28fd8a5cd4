#!/usr/bin/env bash
# Everything CI checks, runnable on a fresh machine with only Python:
#   a virtualenv with Vigil and its test tools, the real servers the tests talk to
#   (PostgreSQL, MariaDB, RabbitMQ, Redis, memcached, ZooKeeper, etcd on 127.0.0.1),
#   ruff, mypy, the import contracts, then the whole pytest suite. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
# The exact versions CI was green with (constraints.txt); pyproject.toml only gives ranges.
.venv/bin/pip install -q --disable-pip-version-check -c constraints.txt -e '.[test]' 2> >(grep -v "^WARNING: Location" >&2)

bash tests/servers/ensure-system.sh
bash tests/servers/start.sh

# The dashboard's browser tests save a screenshot of each page here: CI keeps the directory.
export VIGIL_SCREENSHOTS=${VIGIL_SCREENSHOTS:-$PWD/artifacts/dashboard}

# All four stages run; any failure fails the whole (so a lint error never hides a test result).
status=0
echo "== ruff"; .venv/bin/ruff check src tests bench || status=1
echo "== mypy"; .venv/bin/mypy || status=1
echo "== import contracts"; .venv/bin/lint-imports --no-cache || status=1
echo "== pytest"; .venv/bin/pytest -q -p no:cacheprovider "$@" || status=1
exit $status
