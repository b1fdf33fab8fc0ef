#!/usr/bin/env bash
# The main job: installs what is missing, builds, and hands out IDs from the
# embedded SQLite default store, then measures the hot path.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
# cmake's output goes to build/*.log, and to the terminal when it fails
mkdir -p build
if ! cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >build/configure.log 2>&1; then
  cat build/configure.log >&2
  echo "main: configuring build/ failed (cmake's output above)" >&2
  exit 1
fi
if ! cmake --build build -j"$(nproc)" >build/build.log 2>&1; then
  cat build/build.log >&2
  echo "main: building build/ failed (the compiler's output above)" >&2
  exit 1
fi
idprime=build/cli/idprime
echo "== plugins"
$idprime plugins
echo "== 5 inode IDs from the default store ($($idprime --version))"
$idprime next inode -n 5 --metrics build/main-metrics.prom
echo "== inode value in the store"
$idprime get inode
echo "== the bench: 1,000 files at a 30 ms round trip (SQLite, Redis, Memcached), and the hot path"
scripts/bench.sh
