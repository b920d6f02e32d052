#!/usr/bin/env bash
# Install Sealgate from the hash-locked files in Sealgate's install layout, bind every installed
# file to the locked wheels in a signed manifest, and verify the result. The Dockerfile's build
# stage and `make run` run this; the tests run it into throw-away venvs.
#
#   SEALGATE_VENV               the venv to create (default /opt/sealgate)
#   SEALGATE_SRC                the source tree holding pyproject.toml, the locks and policies/
#                               (default: the directory above this script)
#   PYTHON                      the interpreter the venvs are made from (default python3)
#   SEALGATE_MANIFEST_KEY_FILE  the release key (ECDSA P-256 private key, PEM) that signs the
#                               manifest; unset, empty or absent: a key made for this install
#                               signs it and is never written anywhere (its public half is)
#   SEALGATE_WHEELHOUSE         keep the wheelhouse (locked wheels + the project's) here
#
# The layout (docs/verify.md says why):
#   $venv/lib/python3.X/site-packages  the project only (gateway/, verify/): what `site` sees
#   $venv/lib/sealgate-deps            every locked dependency (pip --target): a directory no
#                                      interpreter start processes, so no .pth file or
#                                      sitecustomize a dependency ships there can ever run
#   $venv/lib/sealgate-manifest.json   the signed install manifest: every file above, bound
#   $venv/lib/sealgate-manifest.pub    its public key
# The venv holds no pip and no setuptools: they live in a build venv deleted at the end.
#
# Every wheel is checked against the lock's hashes (--require-hashes), nothing is built from an
# sdist (--only-binary :all:), no dependency is resolved at install time (--no-deps), and the
# project is built with the locked setuptools (--no-build-isolation). The script fails when the
# manifest cannot bind a file or `verify env` reports any finding.
set -euo pipefail

venv=${SEALGATE_VENV:-/opt/sealgate}
src=${SEALGATE_SRC:-$(cd "$(dirname "$0")/.." && pwd)}
python=${PYTHON:-python3}
key=${SEALGATE_MANIFEST_KEY_FILE:-}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
wheels=${SEALGATE_WHEELHOUSE:-$work/wheels}
pip_flags=(--quiet --disable-pip-version-check --require-hashes --no-deps --only-binary :all:)

# 1. A build venv with the locked pip and setuptools; nothing from it ships.
"$python" -m venv "$work/build"
build="$work/build/bin/python"
"$build" -m pip install "${pip_flags[@]}" -r "$src/requirements-build.lock"

# 2. The wheelhouse: every locked wheel, hash-checked, and the project's own wheel built from a
#    clean copy of the source tree (so nothing is written into the tree itself).
mkdir -p "$wheels" "$work/src"
tar -C "$src" --exclude=__pycache__ --exclude='*.pyc' -cf - pyproject.toml README.md gateway \
  verify | tar -C "$work/src" -xf -
"$build" -m pip download "${pip_flags[@]}" -r "$src/requirements.lock" -d "$wheels"
(cd "$work/src" && "$build" -m pip wheel --quiet --disable-pip-version-check --no-deps \
  --no-build-isolation --no-index -w "$wheels" . >/dev/null)

# 3. The runtime venv, without pip: the project into site-packages, the locked dependencies into
#    the private library. pip runs from the build venv and drives the runtime interpreter.
"$python" -m venv --without-pip "$venv"
runtime="$venv/bin/python"
version=$("$runtime" -I -S -c 'import sys; print("%d.%d" % sys.version_info[:2])')
site="$venv/lib/python$version/site-packages"
deps="$venv/lib/sealgate-deps"
"$build" -m pip --python "$runtime" install --quiet --disable-pip-version-check --no-deps \
  --no-index --no-compile "$wheels"/sealgate-*.whl
"$build" -m pip --python "$runtime" install "${pip_flags[@]}" --no-index --find-links "$wheels" \
  --no-compile --target "$deps" -r "$src/requirements.lock"
rm -rf "$deps/bin" # the dependencies' console scripts: never run, and they name build paths

# 4. Bytecode, compiled once from the installed sources (checked-hash: valid whatever mtimes a
#    copy gives the files); the manifest binds each .pyc to its source, and the serving process
#    never writes any.
"$runtime" -I -S -m compileall -q -f -j 0 --invalidation-mode checked-hash "$site" "$deps" \
  >/dev/null

# 5. The signed install manifest: every file bound to its locked wheel with the standard library
#    alone, and only then signed (with the release key, or one made for this install).
launcher=("$runtime" -I -S -B "$site/gateway/boot.py")
if [ -n "$key" ] && [ -s "$key" ]; then sign=(--key "$key"); else sign=(--ephemeral-key); fi
"${launcher[@]}" verify manifest create --wheelhouse "$wheels" --lock "$src/requirements.lock" \
  "${sign[@]}" --public-key-out "$venv/lib/sealgate-manifest.pub" >/dev/null

# 6. The gate: every file as the manifest says, no unexpected start-up hook, exactly the lock.
"${launcher[@]}" verify env --policies "$src/policies" --lock "$src/requirements.lock"
