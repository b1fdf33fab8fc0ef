#!/usr/bin/env bash
# The whole test suite: installs what is missing, builds with warnings as
# errors, runs every Check suite under ctest (the fault suite included),
# then the same suite built with AddressSanitizer + UndefinedBehaviorSanitizer,
# then with ThreadSanitizer (the fetch worker against the hot path), then a
# short libFuzzer run of each fuzz target (scripts/fuzz.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh

jobs=$(nproc)
run_suite() { # build-dir extra-cmake-args...
  local dir=$1; shift
  cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DIDPRIME_WERROR=ON "$@" >/dev/null
  cmake --build "$dir" -j"$jobs"
  ctest --test-dir "$dir" --output-on-failure -j"$jobs"
}

echo "== build and test (-Werror)"
run_suite build
echo "== build and test under ASan+UBSan"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  run_suite build-asan -DIDPRIME_SANITIZE=address,undefined
echo "== build and test under ThreadSanitizer (no suppressions)"
TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1 \
  run_suite build-tsan -DIDPRIME_SANITIZE=thread
echo "== fuzz: replay the seed corpora, then a short libFuzzer run of each target"
scripts/fuzz.sh
