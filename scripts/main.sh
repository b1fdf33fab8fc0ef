#!/usr/bin/env bash
# The main job: installs what is missing, builds, and hands out IDs from the
# embedded SQLite default store, then measures the hot path.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc)" >/dev/null
idprime=build/cli/idprime
echo "== plugins"
$idprime plugins
echo "== 5 inode IDs from the default store ($($idprime --version))"
$idprime next inode -n 5 --metrics build/main-metrics.prom
echo "== inode value in the store"
$idprime get inode
echo "== hot path: next() on a warm pool vs a bare atomic fetch-add"
build/bench/idprime-hotpath 1
build/bench/idprime-hotpath 2 10000000
