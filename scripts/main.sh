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
echo "== the bench: 1,000 files at a 30 ms round trip (SQLite, Redis, Memcached), and the hot path"
scripts/bench.sh
