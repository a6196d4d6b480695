#!/usr/bin/env bash
# Builds {{name}}.wasm from app.js with componentize-js (pinned; installed
# from npm into .tools on first use), against the contract `warden wit`
# writes. `./build.sh test` runs the unit tests natively (node's test
# runner, no install needed).
# (componentize-js 0.23 does not build byte-for-byte reproducibly yet: its
# engine snapshot is taken with the build's clock and randomness,
# bytecodealliance/ComponentizeJS#321; pin the sha256 of the file you
# deploy.)
set -euo pipefail
cd "$(dirname "$0")"
COMPONENTIZE_JS=0.23.0
if [ "${1:-}" = "test" ]; then
    exec node --test app.test.js
fi
WARDEN="${WARDEN:-warden}"
# The tools' directory (WARDEN_JS_TOOLS: one shared by several plugins).
TOOLS="$(realpath -m "${WARDEN_JS_TOOLS:-.tools}")"
stamp="$TOOLS/.warden-tools-$COMPONENTIZE_JS"
if [ ! -f "$stamp" ]; then
    mkdir -p "$TOOLS"
    npm install --prefix "$TOOLS" --no-audit --no-fund --loglevel=error \
        "@bytecodealliance/componentize-js@$COMPONENTIZE_JS" >/dev/null
    touch "$stamp"
fi
"$WARDEN" wit --out .build/wit >/dev/null
# The plugin's sources alone (not its tests or tools), in a fresh
# directory: componentize-js bundles what component.js imports from it.
rm -rf .build/src && mkdir -p .build/src
cp app.js warden.js component.js package.json .build/src/
(cd .build/src && "$TOOLS/node_modules/.bin/componentize-js" component.js \
    --wit ../wit -n plugin -o ../../{{name}}.wasm >/dev/null)
sha256sum {{name}}.wasm
