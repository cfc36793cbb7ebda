#!/usr/bin/env bash
# Build the engine jar once; skip when target/das-engine.jar matches the hash of pom + src.
# Maven runs offline (-o) when a previous build already filled ~/.m2.
# Usage: engine/build.sh [--force]   -> prints the jar path on stdout.
set -euo pipefail
cd "$(dirname "$0")"
jar=target/das-engine.jar
stamp=target/.source-hash
hash=$( (cat pom.xml; find src -type f | LC_ALL=C sort | xargs cat) | sha256sum | cut -d' ' -f1)
if [[ "${1:-}" != "--force" && -f "$jar" && -f "$stamp" && "$(cat "$stamp")" == "$hash" ]]; then
  echo "$PWD/$jar"
  exit 0
fi
mvn_flags=(-q -B -DskipTests)
if [[ -f "$stamp" ]] && mvn "${mvn_flags[@]}" -o package >&2 2>/dev/null; then
  :
else
  mvn "${mvn_flags[@]}" package >&2
fi
echo "$hash" > "$stamp"
echo "$PWD/$jar"
