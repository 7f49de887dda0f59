#!/usr/bin/env bash
# Builds the libFuzzer targets of the readers (npy, CSV, JSON load, placement, and replay's trace
# readers with the format told by content) with clang, ASan and UBSan, and runs each for
# FUZZ_SECONDS (default 30) on a copy of its seed corpus in tests/fuzz/corpus/<target>/. Fails
# on any finding (crash, sanitizer report, leak, timeout, out-of-memory); prints each target's
# executed-input count. A finding's input is kept in $BUILD_DIR/findings/: turn it into a
# regression test in tests/io/.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR="${BUILD_DIR:-build-fuzz}"
JOBS="${JOBS:-$(nproc)}"
SECONDS_PER_TARGET="${FUZZ_SECONDS:-30}"
CXX=clang++ cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSWIFTBALANCER_FUZZ=ON \
  -DSWIFTBALANCER_SANITIZE=address -DSWIFTBALANCER_TESTS=OFF -DSWIFTBALANCER_BENCH=OFF \
  -DSWIFTBALANCER_MPI=OFF -DSWIFTBALANCER_PYTHON=OFF >/dev/null
TARGETS=(npy csv json_load placement trace)
cmake --build "$BUILD_DIR" -j "$JOBS" --target "${TARGETS[@]/#/fuzz_}"
mkdir -p "$BUILD_DIR/findings"
status=0
for t in "${TARGETS[@]}"; do
  work="$BUILD_DIR/corpus/$t"
  rm -rf "$work" && mkdir -p "$work" && cp tests/fuzz/corpus/"$t"/* "$work"/
  log="$BUILD_DIR/fuzz_$t.log"
  # rss_limit: the readers' memory must follow the input; malloc_limit catches one huge request.
  if ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
    "$BUILD_DIR/tests/fuzz/fuzz_$t" "$work" -max_total_time="$SECONDS_PER_TARGET" \
    -max_len=4096 -timeout=10 -rss_limit_mb=2048 -malloc_limit_mb=1024 -print_final_stats=1 \
    -artifact_prefix="$BUILD_DIR/findings/$t-" >"$log" 2>&1; then
    execs=$(grep -m1 'stat::number_of_executed_units' "$log" | awk '{print $2}')
    echo "fuzz_$t: ok, $execs inputs executed in ${SECONDS_PER_TARGET} s"
  else
    echo "fuzz_$t: FINDING (see $log and $BUILD_DIR/findings/)"
    tail -40 "$log"
    status=1
  fi
done
exit $status
