#!/usr/bin/env bash
# The whole test suite: installs what is missing, builds with warnings as
# errors, runs every Check suite under ctest (the fault suite included),
# then the same suite built with AddressSanitizer + UndefinedBehaviorSanitizer,
# then with ThreadSanitizer (the fetch worker against the hot path), then a
# short libFuzzer run of each fuzz target (scripts/fuzz.sh).
#
# A failing pass does not stop the later ones; the end prints a summary
# that names each pass and, for a ctest pass, its failing suites, and the
# exit code is non-zero if any pass failed.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh

jobs=$(nproc)
results=()   # one line per pass: "ok  <pass>" or "FAILED  <pass>: why"
failures=0
fail() { # pass why
  results+=("FAILED  $1: $2")
  failures=$((failures + 1))
  echo "== FAILED: $1: $2" >&2
}
run_suite() { # pass build-dir extra-cmake-args...
  local pass=$1 dir=$2 suites
  shift 2
  mkdir -p "$dir"
  if ! cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DIDPRIME_WERROR=ON "$@" \
       >"$dir/configure.log" 2>&1; then
    cat "$dir/configure.log" >&2
    fail "$pass" "configuring $dir failed (cmake's output above)"
    return 0
  fi
  if ! cmake --build "$dir" -j"$jobs"; then
    fail "$pass" "building $dir failed (the compiler's output above)"
    return 0
  fi
  rm -f "$dir/Testing/Temporary/LastTestsFailed.log"
  if ! ctest --test-dir "$dir" --output-on-failure -j"$jobs"; then
    suites=$(sed 's/^[0-9]*://' "$dir/Testing/Temporary/LastTestsFailed.log" 2>/dev/null |
             paste -sd ' ' -)
    fail "$pass" "failing suites: ${suites:-none named, see the ctest output above}"
    return 0
  fi
  results+=("ok      $pass")
}

echo "== build and test (-Werror)"
run_suite -Werror build
echo "== build and test under ASan+UBSan"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  run_suite ASan+UBSan build-asan -DIDPRIME_SANITIZE=address,undefined
echo "== build and test under ThreadSanitizer (no suppressions)"
TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1 \
  run_suite TSan build-tsan -DIDPRIME_SANITIZE=thread
echo "== fuzz: replay the seed corpora, then a short libFuzzer run of each target"
if scripts/fuzz.sh; then
  results+=("ok      fuzz")
else
  fail fuzz "scripts/fuzz.sh failed (its output above names the target)"
fi

echo "== summary"
printf '   %s\n' "${results[@]}"
if [ "$failures" -gt 0 ]; then
  echo "test.sh: $failures of ${#results[@]} passes failed" >&2
  exit 1
fi
echo "test.sh: all ${#results[@]} passes ok"
