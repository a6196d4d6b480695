#!/usr/bin/env bash
# Installs detect-secrets (PyPI) into a virtualenv under the target
# directory on first use and prints the path of its executable.
set -euo pipefail
target="${CARGO_TARGET_DIR:-$(dirname "$0")/../../../target}"
venv="$target/bench-peers/detect-secrets"
if [ ! -x "$venv/bin/detect-secrets" ]; then
    python3 -m venv "$venv" >&2
    "$venv/bin/pip" install --quiet 'detect-secrets==1.5.0' >&2
fi
echo "$venv/bin/detect-secrets"
