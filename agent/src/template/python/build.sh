#!/usr/bin/env bash
# Builds {{name}}.wasm from app.py with componentize-py (pinned; installed
# into .venv on first use), against the contract `warden wit` writes.
# `./build.sh test` runs the unit tests (pytest, pinned) natively instead.
# (componentize-py 0.25 does not build byte-for-byte reproducibly yet:
# bytecodealliance/componentize-py#247; pin the sha256 of the file you
# deploy.)
set -euo pipefail
cd "$(dirname "$0")"
COMPONENTIZE_PY=0.25.1
PYTEST=8.4.2
WARDEN="${WARDEN:-warden}"
# The tools' virtualenv (WARDEN_PY_VENV: one shared by several plugins).
VENV="$(realpath -m "${WARDEN_PY_VENV:-.venv}")"
stamp="$VENV/.warden-tools-$COMPONENTIZE_PY-$PYTEST"
if [ ! -f "$stamp" ]; then
    python3 -m venv "$VENV"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
        "componentize-py==$COMPONENTIZE_PY" "pytest==$PYTEST"
    touch "$stamp"
fi
if [ "${1:-}" = "test" ]; then
    exec env PYTHONDONTWRITEBYTECODE=1 "$VENV/bin/python" -m pytest -q -p no:cacheprovider test_app.py
fi
"$WARDEN" wit --out .build/wit >/dev/null
# The sources alone, in a fresh directory, with one fixed time (the
# component's Python writes and bundles bytecode caches, which carry the
# sources' times; nothing else of this directory goes in).
rm -rf .build/src && mkdir -p .build/src
cp app.py warden.py .build/src/
touch -d @0 .build/src/*.py
export PYTHONDONTWRITEBYTECODE=1 PYTHONHASHSEED=0 SOURCE_DATE_EPOCH=0
(cd .build/src && "$VENV/bin/componentize-py" --wit-path ../wit --world plugin \
    componentize -p . app -o ../../{{name}}.wasm)
sha256sum {{name}}.wasm
