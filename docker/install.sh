#!/usr/bin/env bash
# Install Sealgate into a fresh virtual environment from the hash-locked files only, verify it,
# then strip the installer out of it. The Dockerfile's build stage runs this; CI and
# tests/ship/test_install_script.py run the same script against a throw-away venv.
#
#   SEALGATE_VENV   the venv to create (default /opt/sealgate)
#   SEALGATE_SRC    the source tree holding pyproject.toml, the locks and policies/
#                   (default: the directory above this script)
#   PYTHON          the interpreter the venv is made from (default python3)
#
# Every wheel is checked against the lock's hashes (--require-hashes), nothing is built from an
# sdist (--only-binary :all:), and no dependency is resolved at install time (--no-deps). The
# project itself is built with the locked setuptools (--no-build-isolation). The script fails
# when `sealgate verify env` reports any finding, before and after pip and setuptools are removed.
set -euo pipefail

venv=${SEALGATE_VENV:-/opt/sealgate}
src=${SEALGATE_SRC:-$(cd "$(dirname "$0")/.." && pwd)}
python=${PYTHON:-python3}
pip_flags=(--quiet --disable-pip-version-check --no-cache-dir --require-hashes --no-deps
  --only-binary :all:)

"$python" -m venv "$venv"
"$venv/bin/python" -m pip install "${pip_flags[@]}" -r "$src/requirements-build.lock"
"$venv/bin/python" -m pip install "${pip_flags[@]}" -r "$src/requirements.lock"
(cd "$src" && "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
  --no-cache-dir --no-deps --no-build-isolation --no-index .)

# The gate: the venv is exactly the two locks plus the project, with no unexpected start-up hooks
# and every file matching its RECORD. Findings exit 1 and stop the build.
"$venv/bin/sealgate" verify env --policies "$src/policies" \
  --lock "$src/requirements.lock" --lock "$src/requirements-build.lock"

# No installer at run time: pip and setuptools (and setuptools' distutils-precedence.pth) go.
"$venv/bin/python" -m pip uninstall --quiet --yes setuptools pip
rm -rf "$src/build" "$src"/*.egg-info

# The state that ships: the runtime lock plus the project, nothing else.
"$venv/bin/sealgate" verify env --policies "$src/policies" --lock "$src/requirements.lock"
