#!/usr/bin/env bash
# Installs openapi-spec-validator and schemathesis (pinned, from PyPI) in
# a virtualenv under the target directory on first use, and prints the
# virtualenv's bin directory. The OpenAPI tests use them as peers.
set -euo pipefail
validator=0.9.0
schemathesis=4.32.5
here="$(cd "$(dirname "$0")" && pwd)"
target="${CARGO_TARGET_DIR:-$here/../../target}"
venv="$target/peers/openapi-tools"
stamp="$venv/.installed-$validator-$schemathesis"
if [ ! -f "$stamp" ]; then
    rm -rf "$venv"
    python3 -m venv "$venv" >&2
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
        "openapi-spec-validator==$validator" "schemathesis==$schemathesis" >&2
    touch "$stamp"
fi
echo "$venv/bin"
