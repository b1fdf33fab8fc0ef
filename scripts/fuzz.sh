#!/usr/bin/env bash
# Builds the libFuzzer targets (tests/fuzz) with clang, ASan and UBSan in
# build-fuzz/, replays their seed corpora, then fuzzes each for a bounded
# time over a copy of its seeds. Exits non-zero if any target crashes,
# leaks, times out or breaks an invariant; the reproducer is kept in
# build-fuzz/fuzz-out/<target>/ (crash-*, leak-*, timeout-*, oom-*).
#
#   scripts/fuzz.sh                 every target, FUZZ_SECONDS each
#   scripts/fuzz.sh uri config      only these
#
# Environment: FUZZ_SECONDS (default 40 per target), FUZZ_BUILD_DIR
# (default build-fuzz), FUZZ_JOBS (build parallelism, default nproc).
# Reproduce a finding: build-fuzz/tests/fuzz/idprime-fuzz-<t> <file>.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${FUZZ_SECONDS:-40}
dir=${FUZZ_BUILD_DIR:-build-fuzz}
jobs=${FUZZ_JOBS:-$(nproc)}
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(uri config plugin resp)

# clang, and the runtime the fuzz targets link against (libFuzzer, ASan,
# UBSan: libclang-rt-*-dev, which Debian's clang only recommends, so a
# --no-install-recommends install, or a machine that has clang without
# it, cannot link them). Checked by linking a probe, not by the compiler's
# presence; libclang-rt-dev is the runtime of the default clang.
can_link_fuzzer() {
  command -v clang >/dev/null 2>&1 || return 1
  local probe
  probe=$(mktemp -d "${TMPDIR:-/tmp}/idprime-fuzz-probe.XXXXXX")
  printf '%s\n' '#include <stddef.h>' '#include <stdint.h>' \
    'int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n) { (void)d; (void)n; return 0; }' \
    >"$probe/probe.c"
  if clang -fsanitize=fuzzer,address,undefined "$probe/probe.c" -o "$probe/probe" \
       >"$probe/log" 2>&1; then
    rm -rf "$probe"
    return 0
  fi
  probe_log=$(cat "$probe/log")
  rm -rf "$probe"
  return 1
}
probe_log=
if ! can_link_fuzzer; then
  sudo=()
  [ "$(id -u)" -eq 0 ] || sudo=(sudo)
  echo "== installing clang and its sanitizer/libFuzzer runtime"
  "${sudo[@]}" apt-get update -q
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -q \
    --no-install-recommends clang libclang-rt-dev
  if ! can_link_fuzzer; then
    echo "clang cannot link a libFuzzer target with ASan+UBSan:" >&2
    printf '%s\n' "$probe_log" >&2
    exit 1
  fi
fi

echo "== configure $dir (clang, ASan+UBSan, IDPRIME_FUZZ=ON)"
mkdir -p "$dir"
if ! cmake -S . -B "$dir" -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=RelWithDebInfo \
     -DIDPRIME_FUZZ=ON -DIDPRIME_SANITIZE=address,undefined >"$dir/configure.log" 2>&1; then
  cat "$dir/configure.log" >&2
  echo "fuzz: configuring $dir failed (cmake's output above)" >&2
  exit 1
fi
echo "== build the fuzz targets"
cmake --build "$dir" -j"$jobs" --target idprime-fuzzers

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:allocator_may_return_null=1:quarantine_size_mb=64}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

echo "== replay the seed corpora"
if ! ctest --test-dir "$dir" -L fuzz --output-on-failure; then
  echo "a seed of tests/fuzz/corpus fails: fix that first (no fuzzing run)" >&2
  exit 1
fi

# per-target limits: inputs longer than these teach nothing new
declare -A max_len=([uri]=1024 [config]=4096 [plugin]=2048 [resp]=4096)

failed=()
for t in "${targets[@]}"; do
  bin=$dir/tests/fuzz/idprime-fuzz-$t
  seeds=tests/fuzz/corpus/$t
  [ -x "$bin" ] && [ -d "$seeds" ] || { echo "unknown target '$t'" >&2; exit 2; }
  out=$dir/fuzz-out/$t
  rm -rf "$out"
  mkdir -p "$out/corpus" "$out/artifacts"
  cp "$seeds"/* "$out/corpus/"   # the fuzzer adds to the copy, never to tests/
  # the project's own inputs seed too (as tests/fuzz/CMakeLists.txt says)
  [ "$t" != config ] || cp config/examples/*.lua "$out/corpus/"
  echo "== fuzz $t for ${seconds}s"
  start=$SECONDS
  if "$bin" "$out/corpus" -dict="tests/fuzz/$t.dict" \
       -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
       -max_len="${max_len[$t]:-4096}" -print_final_stats=1 \
       -artifact_prefix="$out/artifacts/" >"$out/log" 2>&1; then
    echo "   ok in $((SECONDS - start))s: $(grep -E '^#[0-9]+' "$out/log" | tail -1)"
  else
    echo "   FAILED: $t (log $out/log, reproducer in $out/artifacts/)" >&2
    grep -E -m1 -A30 'ERROR:|fuzz invariant|runtime error|SUMMARY' "$out/log" >&2 || tail -40 "$out/log" >&2
    failed+=("$t")
  fi
done

if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzzing found problems in: ${failed[*]}" >&2
  exit 1
fi
echo "== fuzzing: no findings (${targets[*]}, ${seconds}s each)"
