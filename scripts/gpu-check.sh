#!/usr/bin/env bash
# The GPU check (issues 10 and 19), in two halves so that the build happens where CUDA, NCCL and
# the build tools are, and the run fits one short lease of a GPU machine:
#
#   scripts/gpu-check.sh build [extra cmake args...]
#       here (no GPU needed): configures $BUILD_DIR (default build-gpu) with the CUDA device path
#       on and MPI off, builds device_tests, device_bench and the CLI, and packs them (stripped,
#       with the CUDA runtime they link) into $BUNDLE (default build-gpu-bundle/, ignored by git
#       like every build*/ folder), with the header-only libraries CMake needs (nlohmann-json,
#       CLI11) under deps/, refusing a bundle of 64 MiB or more. The torch extension's sources
#       and tests/python travel with the working tree; the extension is built there, against
#       that machine's torch and Python.
#   scripts/gpu-check.sh run
#       there: runs every step even when one fails, and writes one summary file
#       ($BUNDLE/summary.txt, or $SUMMARY; also copied into $OUT when that is set) of figures and
#       verdicts (PASS / FAIL / SKIP, each with its reason). Needs only what the GPU machine has
#       (bash, python3, the driver; NCCL from the nvidia-nccl wheel is found through python3).
#       Without a device every step is reported as SKIP (no CUDA device), never as passed, and it
#       ends in seconds. Exit status: 1 when any step failed, else 0.
#
# Steps of `run`: device tests (among them the ordering tests of issue 19: 44 MB installs against
# spinning kernels on two engine streams, a global-mode capture while another thread polls,
# one-launch against per-layer recording), then again under compute-sanitizer's memcheck (all
# but the NCCL test); device benchmark (recording and staging figures),
# with its two targets as verdicts of their own (recording of 58 layers in one launch <= 10 us
# GPU time per step; staging >= 80% of plain D2D bandwidth); `demo --device
# cuda` async and sync with each injected fault (0 mismatched outputs and at least one committed
# layer); the NCCL demo under mpirun (skipped: the bundle is built without MPI); last, the torch
# runtime on CUDA (swiftbalancer._torch built there; tests/python/torch_balancer_worker.py with
# SB_DEVICE=cuda, scenarios move and step): weights on NCCL and counts on gloo, one GPU per rank,
# up to 4 ranks. On a machine of one GPU it runs one rank (NCCL refuses two on one GPU): the
# tables, routing and device counting through the balancer's cycles on the GPU, but no
# transfer (one rank holds each expert once: nothing can move); then what the per-step calls
# cost the serving thread with CUDA and with CPU tensors (bench/torch_serving_calls.py); last,
# examples/torch_ep/serve.py on the machine's cores (torch-ep-example, below). With OUT set,
# the logs come back as gpu-logs.tgz beside the summary.
#   scripts/gpu-check.sh example
#       there: only the torch example's step (the extension built first).
# Budget: about 6 minutes of `run` on one H200 (16 cores), 4 of `example` with 4 runs.
set -uo pipefail
cd "$(dirname "$0")/.."
MODE="${1:-}"
[ $# -gt 0 ] && shift
BUILD_DIR="${BUILD_DIR:-build-gpu}"
BUNDLE="${BUNDLE:-build-gpu-bundle}"
JOBS="${JOBS:-$(nproc)}"
PY="${PYTHON:-python3}"

build() {
  set -e
  cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release -DSWIFTBALANCER_CUDA=ON \
    -DSWIFTBALANCER_MPI=OFF -DSWIFTBALANCER_PYTHON=OFF -DSWIFTBALANCER_BENCH=ON "$@"
  cmake --build "$BUILD_DIR" -j "$JOBS" --target device_tests device_bench swiftbalancer_cli
  rm -rf "$BUNDLE" && mkdir -p "$BUNDLE/bin" "$BUNDLE/lib"
  cp "$BUILD_DIR/tests/device_tests" "$BUILD_DIR/bench/device_bench" \
    "$BUILD_DIR/src/swiftbalancer" "$BUNDLE/bin/"
  strip "$BUNDLE"/bin/* 2>/dev/null || true
  # The shared CUDA runtime the binaries link (one runtime: cmake/cuda.cmake). NCCL is not
  # carried (hundreds of MB): the GPU machine has it as the nvidia-nccl wheel.
  local cudart
  cudart=$(ldd "$BUNDLE/bin/device_tests" | awk '/libcudart\.so/ {print $3; exit}')
  [ -n "$cudart" ] && cp -L "$cudart" "$BUNDLE/lib/"
  # The header-only libraries CMake insists on (nlohmann-json, CLI11), with their relocatable
  # CMake packages, for the torch extension's build there (the GPU machine has no Debian -dev).
  local pkg
  mkdir -p "$BUNDLE/deps/include" "$BUNDLE/deps/share/cmake"
  for pkg in nlohmann_json:nlohmann CLI11:CLI; do
    local cfg inc
    cfg=$(dirname "$(find /usr/share/cmake /usr/lib/cmake /usr/lib/x86_64-linux-gnu/cmake \
      -name "${pkg%%:*}Config.cmake" 2>/dev/null | head -1)")
    inc="/usr/include/${pkg##*:}"
    if [ ! -d "$cfg" ] || [ ! -d "$inc" ]; then
      echo "error: ${pkg%%:*} (headers and CMake package) not found: scripts/install-deps.sh" >&2
      exit 1
    fi
    cp -r "$cfg" "$BUNDLE/deps/share/cmake/" && cp -r "$inc" "$BUNDLE/deps/include/"
  done
  example_inputs
  git rev-parse HEAD >"$BUNDLE/commit" 2>/dev/null || true
  local kib
  kib=$(du -sk "$BUNDLE" | cut -f1)
  echo "bundle: $BUNDLE, $((kib / 1024)) MiB ($kib KiB)"
  if [ "$kib" -ge $((64 * 1024)) ]; then
    echo "error: the bundle is 64 MiB or more; it cannot travel with a run" >&2
    exit 1
  fi
  echo "on the GPU machine: scripts/gpu-check.sh run   (carry: $BUNDLE)"
}

# What examples/torch_ep/serve.py needs there and the GPU machine lacks (it has torch, not
# transformers, and reaches no index): transformers with its dependencies as wheels for that
# machine's Python ($GPU_PYTHON_VERSION, default 3.12), and the one trace the example reads by
# default (a copy for the run, in the ignored bundle, never in the repository). Either missing:
# the example's step says SKIP and why.
example_inputs() {
  local tf ver="${GPU_PYTHON_VERSION:-3.12}" trace="deepseek_v3r1/prefill_in1024.json"
  local traces="${TRACES:-../shared/traces}" py="${VENV_PYTHON:-.venv/bin/python}"
  [ -x "$py" ] || py="$PY"
  tf=$("$py" -c 'import transformers; print(transformers.__version__)' 2>/dev/null || true)
  mkdir -p "$BUNDLE/wheels"
  if [ -z "$tf" ]; then
    echo "note: no transformers here to pin (scripts/install-deps.sh): the example will not run there" >&2
  elif ! "$py" -m pip download -q --only-binary=:all: \
    --python-version "$ver" --implementation cp --platform manylinux2014_x86_64 \
    --platform manylinux_2_17_x86_64 --platform manylinux_2_28_x86_64 \
    -d "$BUNDLE/wheels" "transformers==$tf" numpy >"$BUNDLE/wheels.log" 2>&1; then
    echo "note: transformers $tf wheels not fetched (log: $BUNDLE/wheels.log): the example will not run there" >&2
    rm -rf "$BUNDLE/wheels"
  fi
  if [ -f "$traces/$trace" ]; then
    mkdir -p "$BUNDLE/traces/$(dirname "$trace")" && cp "$traces/$trace" "$BUNDLE/traces/$trace"
  fi
}

SUMMARY_FILE=""
FAILED=0
say() { echo "$*" | tee -a "$SUMMARY_FILE"; }
verdict() {  # verdict STEP PASS|FAIL|SKIP reason...
  local step="$1" v="$2"
  shift 2
  [ "$v" = FAIL ] && FAILED=1
  say "$(printf '%-34s %s  %s' "$step" "$v" "$*")"
}

run() {
  SUMMARY_FILE="${SUMMARY:-$BUNDLE/summary.txt}"
  mkdir -p "$(dirname "$SUMMARY_FILE")"
  : >"$SUMMARY_FILE"
  local logs="$BUNDLE/logs"
  mkdir -p "$logs"
  local steps=(device-tests memcheck device-bench recording-58-layers staging-bandwidth
    demo-cuda-async-sync nccl-demo-mpi torch-cuda-move torch-cuda-step torch-serving-calls
    torch-ep-example)
  say "gpu-check run: $(date -u +%FT%TZ), commit $(cat "$BUNDLE/commit" 2>/dev/null || echo '?')"
  local gpus=0
  command -v nvidia-smi >/dev/null && gpus=$(nvidia-smi -L 2>/dev/null | grep -c '^GPU ' || true)
  if [ "$gpus" -lt 1 ]; then
    say "no CUDA device (nvidia-smi reports none): nothing ran on a GPU"
    for s in "${steps[@]}"; do verdict "$s" SKIP "no CUDA device"; done
    finish
    return
  fi
  say "devices: $(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | paste -sd';')"
  if [ ! -x "$BUNDLE/bin/device_tests" ]; then
    for s in "${steps[@]}"; do verdict "$s" FAIL "no bundle at $BUNDLE (run: scripts/gpu-check.sh build)"; done
    finish
    return
  fi
  # NCCL from the wheel (no nccl.h there, only libnccl.so.2), the CUDA runtime from the bundle.
  local nccl_lib
  nccl_lib=$("$PY" -c 'import nvidia.nccl, os; print(os.path.join(os.path.dirname(nvidia.nccl.__file__), "lib"))' 2>/dev/null || true)
  export LD_LIBRARY_PATH="$PWD/$BUNDLE/lib${nccl_lib:+:$nccl_lib}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  local bin="$BUNDLE/bin"

  # 1. Device tests: all pass, none skipped.
  if timeout 300 "$bin/device_tests" >"$logs/device_tests.log" 2>&1; then
    local skipped
    skipped=$(grep -c '^\[  SKIPPED \]' "$logs/device_tests.log" || true)
    verdict device-tests PASS "$(grep -E '^\[  PASSED  \]' "$logs/device_tests.log" | head -1) ($skipped skipped lines)"
  else
    verdict device-tests FAIL "$(grep -E '^\[  FAILED  \]' "$logs/device_tests.log" | head -3 | paste -sd' ')"
  fi

  # 1b. The device tests again under compute-sanitizer's memcheck (out-of-bounds and misaligned
  # accesses in our kernels and copies): 0 errors. NCCL's own kernels are left out (the NCCL
  # test), as are CUDA API return codes that the tests provoke on purpose.
  local cs
  cs=$(command -v compute-sanitizer || ls /usr/local/cuda*/bin/compute-sanitizer 2>/dev/null | head -1)
  if [ -z "$cs" ]; then
    verdict memcheck SKIP "no compute-sanitizer on this machine"
  elif timeout 240 "$cs" --tool memcheck --report-api-errors no --error-exitcode 3 \
    "$bin/device_tests" --gtest_filter='-NcclTransport.*' >"$logs/memcheck.log" 2>&1; then
    verdict memcheck PASS "$(grep -m1 'ERROR SUMMARY' "$logs/memcheck.log"), $(grep -m1 -E '^\[  PASSED  \]' "$logs/memcheck.log")"
  else
    verdict memcheck FAIL "exit $?: $(grep -m1 'ERROR SUMMARY' "$logs/memcheck.log") (log: $logs/memcheck.log)"
  fi

  # 2. Benchmark: its figures into the summary (targets: recording of 58 layers <= 10 us GPU
  # time per step; staging >= 80% of plain D2D bandwidth with 44 MB experts).
  if timeout 120 "$bin/device_bench" >"$logs/device_bench.log" 2>&1; then
    verdict device-bench PASS "figures below"
    sed 's/^/    /' "$logs/device_bench.log" | tail -30 | tee -a "$SUMMARY_FILE"
  else
    verdict device-bench FAIL "exit $? (log: $logs/device_bench.log)"
  fi
  # The benchmark's targets, each its own verdict (a figure the log lacks is a FAIL).
  local rec_us ratio
  rec_us=$(awk '/counts, one add per step/ {print $6; exit}' "$logs/device_bench.log" 2>/dev/null)
  ratio=$(awk '$1 == "ratio" {print $2; exit}' "$logs/device_bench.log" 2>/dev/null)
  if [ -z "$rec_us" ]; then
    verdict recording-58-layers FAIL "no figure in the benchmark's log"
  elif awk -v v="$rec_us" 'BEGIN {exit !(v <= 10)}'; then
    verdict recording-58-layers PASS "$rec_us us GPU time per step, one launch (target <= 10 us)"
  else
    verdict recording-58-layers FAIL "$rec_us us GPU time per step, one launch (target <= 10 us)"
  fi
  if [ -z "$ratio" ]; then
    verdict staging-bandwidth FAIL "no figure in the benchmark's log"
  elif awk -v v="$ratio" 'BEGIN {exit !(v >= 80)}'; then
    verdict staging-bandwidth PASS "$ratio % of plain D2D with 44 MB experts (target >= 80 %)"
  else
    verdict staging-bandwidth FAIL "$ratio % of plain D2D with 44 MB experts (target >= 80 %)"
  fi

  # 3. demo --device cuda: async and sync, every fault, 0 mismatches, >= 1 committed layer.
  local fault ok=1 notes=""
  for fault in none transfer-timeout worker-exception bad-placement; do
    local rep="$logs/demo_cuda_$fault.json"
    if ! timeout 120 "$bin/swiftbalancer" demo --device cuda --mode async,sync --steps 300 \
      --quiet --inject-fault "$fault" --report "$rep" >"$logs/demo_$fault.log" 2>&1; then
      ok=0
      notes+=" $fault:exit-nonzero"
      continue
    fi
    notes+=" $fault:$("$PY" - "$rep" <<'PYEOF' 2>&1
import json, sys
r = json.load(open(sys.argv[1]))
def find(o, key):
    if isinstance(o, dict):
        for k, v in o.items():
            if k == key: yield v
            yield from find(v, key)
    elif isinstance(o, list):
        for v in o: yield from find(v, key)
mism = sum(v for v in find(r, "mismatches") if isinstance(v, (int, float)))
committed = sum(v for v in find(r, "layers_committed") if isinstance(v, (int, float)))
print("mismatches=%d,committed=%d" % (mism, committed) + ("" if mism == 0 and committed >= 1 else ",BAD"))
PYEOF
)"
  done
  if [ $ok = 1 ] && [[ "$notes" != *BAD* ]] && [[ "$notes" != *rror* ]]; then
    verdict demo-cuda-async-sync PASS "$notes"
  else
    verdict demo-cuda-async-sync FAIL "$notes"
  fi

  # 4. The NCCL demo needs MPI, which the bundle is built without (the GPU machine has no MPI).
  verdict nccl-demo-mpi SKIP "bundle built without MPI (none on the GPU machine)"

  # 5. The torch runtime on CUDA (kept from the first version of this script).
  torch_cuda
  # 6. The torch example on this machine's cores (CPU ranks on gloo).
  torch_ep_example
  finish
}

# Built there, against that machine's torch and Python (an extension is tied to both); the
# header-only dependencies come with the bundle, pybind11 from the machine's Python. Sets
# TORCH_BUILT (the build folder; its python/ goes on PYTHONPATH) or TORCH_BUILD_ERROR.
TORCH_BUILT=""
TORCH_BUILD_ERROR=""
build_torch_extension() {
  local pyb="$BUILD_DIR-py" gen=()
  command -v ninja >/dev/null && gen=(-G Ninja)
  mkdir -p "$BUNDLE/logs"
  if ! { cmake -S . -B "$pyb" "${gen[@]}" -DCMAKE_BUILD_TYPE=Release -DSWIFTBALANCER_PYTHON=ON \
    -DSWIFTBALANCER_TESTS=OFF -DSWIFTBALANCER_BENCH=OFF -DSWIFTBALANCER_MPI=OFF \
    -DSWIFTBALANCER_CUDA=OFF -DCMAKE_PREFIX_PATH="$PWD/$BUNDLE/deps" \
    -Dpybind11_DIR="$("$PY" -m pybind11 --cmakedir 2>/dev/null)" \
    -DPython_EXECUTABLE="$(command -v "$PY")" &&
    cmake --build "$pyb" -j "$JOBS" --target swiftbalancer_python; } >"$BUNDLE/logs/torch_build.log" 2>&1; then
    TORCH_BUILD_ERROR="the extension did not build: $(grep -m1 -iE 'error' "$BUNDLE/logs/torch_build.log")"
    return 1
  fi
  TORCH_BUILT="$pyb"
}

torch_cuda() {
  local tgpus st torch_steps=(torch-cuda-move torch-cuda-step torch-serving-calls)
  tgpus=$("$PY" -c "import torch; print(torch.cuda.device_count())" 2>/dev/null || echo 0)
  if [ "$tgpus" -lt 1 ]; then
    for st in "${torch_steps[@]}"; do verdict "$st" SKIP "torch sees no CUDA device"; done
    return
  fi
  if ! build_torch_extension; then
    for st in "${torch_steps[@]}"; do verdict "$st" FAIL "$TORCH_BUILD_ERROR"; done
    return
  fi
  local pyb="$TORCH_BUILT"
  # One GPU per rank, up to 4. NCCL refuses two ranks on one GPU, so a machine of one GPU runs
  # one rank, which holds each expert once: its cycles gather, decide and agree, nothing moves
  # (the worker's docstring).
  local np=$((tgpus < 4 ? tgpus : 4)) scenario
  for scenario in move step; do
    local out="$pyb/torch_cuda_$scenario" port=$((29500 + RANDOM % 1000)) r
    rm -rf "$out" && mkdir -p "$out"
    for r in $(seq 0 $((np - 1))); do
      PYTHONPATH="$pyb/python" RANK=$r WORLD_SIZE=$np MASTER_ADDR=127.0.0.1 MASTER_PORT=$port \
        SB_DEVICE=cuda timeout 120 "$PY" tests/python/torch_balancer_worker.py \
        "$scenario" "$out" >"$BUNDLE/logs/torch_${scenario}_rank$r.log" 2>&1 &
    done
    wait
    # move: every rank with 0 slots holding another expert than its table says, the same
    # placements, at least one rebalance, no failed layer. step: record / record_step / a bound
    # tensor (on the GPU: the device accumulator) give the same placements, the bound tensor
    # zeroed in place.
    local res
    if res=$("$PY" - "$out" "$np" "$scenario" <<'PYEOF' 2>&1
import json, os, sys
out, n, scenario = sys.argv[1], int(sys.argv[2]), sys.argv[3]
rs = []
for r in range(n):
    path = os.path.join(out, "rank%d.json" % r)
    assert os.path.exists(path), "rank %d wrote no report" % r
    rs.append(json.load(open(path)))
assert all(r["wrong_slots"] == 0 for r in rs), "a slot held the wrong expert"
if scenario == "move":
    assert all(r["placements"] == rs[0]["placements"] for r in rs), "ranks disagree"
    c = [r["counters"] for r in rs]
    assert all(x["errors"] == 0 and x["layers_failed"] == 0 for x in c), c
    assert all(x["gathers"] >= 1 and x["cycles_agreed"] >= 1 for x in c), c
    # One rank holds each expert once: no placement is better, nothing may move.
    assert (c[0]["rebalances"] >= 1 and c[0]["layers_committed"] >= 1) if n > 1 else \
        (c[0]["rebalances"] == 0 and c[0]["bytes_received"] == 0), c[0]
    print("%d GPU(s), %s: %d steps, %d cycles agreed, %d rebalances, %d layers committed, "
          "%d bytes received, 0 wrong slots" % (n, rs[0]["transport"], c[0]["steps"],
          c[0]["cycles_agreed"], c[0]["rebalances"], c[0]["layers_committed"],
          sum(x["bytes_received"] for x in c)))
else:
    for r in rs:
        assert r["placements_a"] == r["placements_b"] == r["placements_c"], "record paths differ"
        assert r["bound_left_nonzero"] == 0 and not r["bound_moved"], "bound tensor not zeroed"
    p = rs[0]["placements_a"]
    print("%d GPU(s): record, record_step and a bound tensor agree on %d steps, %d placement "
          "changes" % (n, len(p), sum(a != b for a, b in zip(p, p[1:]))))
PYEOF
    ); then
      verdict "torch-cuda-$scenario" PASS "$res"
    else
      verdict "torch-cuda-$scenario" FAIL "$(echo "$res" | tail -1) (logs: $BUNDLE/logs/torch_${scenario}_rank*.log)"
    fi
  done
  # What the per-step calls cost the serving thread with CUDA tensors, beside the same ranks
  # with CPU tensors (bench/torch_serving_calls.py; figures, no target).
  local dev ok=1
  for dev in cuda cpu; do
    if ! PYTHONPATH="$pyb/python" timeout 120 "$PY" -m torch.distributed.run --nproc-per-node "$np" \
      --master-port $((29500 + RANDOM % 1000)) bench/torch_serving_calls.py --device "$dev" \
      >"$BUNDLE/logs/torch_serving_calls_$dev.log" 2>&1; then
      ok=0
    fi
  done
  if [ $ok = 1 ]; then
    verdict torch-serving-calls PASS "figures below (host time per call, us)"
    for dev in cuda cpu; do
      grep -A12 '^calls right after' "$BUNDLE/logs/torch_serving_calls_$dev.log" | sed 's/^/    /' |
        tee -a "$SUMMARY_FILE"
    done
  else
    verdict torch-serving-calls FAIL "exit non-zero (logs: $BUNDLE/logs/torch_serving_calls_*.log)"
  fi
}

# examples/torch_ep/serve.py with 4 CPU ranks on gloo, as on the 2-core development machine but
# with a core per rank and more (the GPU machine has 16): the issue's figures where the ranks do
# not share cores, so that the step-level comparison of async against sync is not decided by
# which process the scheduler ran. Runs of async and sync per expert size (EP_SIZES, EP_RUNS),
# then each injected fault once. PASS: every run and mode has 0 wrong-expert tokens and max
# |diff| <= 1e-5, the first interval's imbalance >= 1.8 and <= 1.10 after the first rebalance,
# async's serving-thread p99 <= 100 us, and (at EP_STALL_SIZES) async's worst rebalance step at
# most a third of sync's stall.
torch_ep_example() {
  local st=torch-ep-example logs="$BUNDLE/logs"
  if [ -z "$TORCH_BUILT" ]; then
    verdict $st SKIP "the torch extension was not built (torch-cuda steps)"
    return
  fi
  if ! ls "$BUNDLE"/wheels/transformers-*.whl >/dev/null 2>&1; then
    verdict $st SKIP "no transformers wheels in the bundle (fetched by the build step)"
    return
  fi
  # A wheel is a zip of its installed files: unpacked, they import from PYTHONPATH (no pip or
  # index needed there; none of the example's imports needs a wheel's scripts).
  local site="$TORCH_BUILT/site"
  rm -rf "$site" && mkdir -p "$site"
  if ! "$PY" - "$site" "$BUNDLE"/wheels/*.whl >"$logs/torch_ep_unpack.log" 2>&1 <<'PYEOF'
import sys, zipfile
for wheel in sys.argv[2:]:
    zipfile.ZipFile(wheel).extractall(sys.argv[1])
PYEOF
  then
    verdict $st FAIL "the wheels did not unpack (log: $logs/torch_ep_unpack.log)"
    return
  fi
  local traces=() run size reports=()
  [ -d "$BUNDLE/traces" ] && traces=(--traces "$BUNDLE/traces")
  # Expert sizes as HIDDEN:INTERMEDIATE (256:256, the README's: 768 KB experts; 512:512: 3 MB),
  # runs without a fault per size, and the faults (each run once, at the first size).
  local sizes=(${EP_SIZES:-256:256 512:512}) runs=()
  for size in "${sizes[@]}"; do
    for run in $(seq 1 "${EP_RUNS:-3}"); do runs+=("none:$size:$run"); done
  done
  for run in ${EP_FAULTS-transfer-timeout worker-exception bad-placement}; do
    runs+=("$run:${sizes[0]}:1")
  done
  for run in "${runs[@]}"; do
    IFS=: read -r fault hidden inter n <<<"$run"
    local name="${fault}_${hidden}x${inter}_$n"
    PYTHONPATH="$TORCH_BUILT/python:$site" timeout 180 "$PY" -m torch.distributed.run \
      --nproc-per-node 4 --master-port $((29500 + RANDOM % 1000)) examples/torch_ep/serve.py \
      --mode async,sync --steps 100 --interval 20 --hidden "$hidden" --intermediate "$inter" \
      --inject-fault "$fault" "${traces[@]}" --report "$logs/torch_ep_$name.json" \
      >"$logs/torch_ep_$name.log" 2>&1
    reports+=("$logs/torch_ep_$name.json")
  done
  local res
  # The stall comparison is a verdict only at the sizes in EP_STALL_SIZES (default the largest
  # run): with 768 KB experts sync's whole stall (10-35 ms on 16 cores) is within the steps'
  # own spread (+15-30 ms for steps that move nothing), so the ratio there says which step the
  # host disturbed; it is printed for every size.
  if res=$(EP_STALL_SIZES="${EP_STALL_SIZES:-${sizes[-1]}}" "$PY" - "$(nproc)" "${reports[@]}" <<'PYEOF' 2>&1
import json, os, sys
cores, paths = sys.argv[1], sys.argv[2:]
stall_sizes = ["%sx%s" % tuple(v.split(":")) for v in os.environ["EP_STALL_SIZES"].split()]
bad, lines, rep = [], [], None
for path in paths:
    name = os.path.basename(path)[len("torch_ep_"):-len(".json")]
    if not os.path.exists(path):
        bad.append("%s: no report (log beside it)" % name)
        continue
    rep = json.load(open(path))
    runs = {r["mode"]: r for r in rep["runs"]}
    for m, r in runs.items():
        if r["wrong_expert_tokens"] or r["max_abs_diff"] > 1e-5:
            bad.append("%s %s: %d wrong tokens, diff %.1e" % (name, m, r["wrong_expert_tokens"],
                                                             r["max_abs_diff"]))
    a, c = runs["async"], rep["comparison"]
    if not name.startswith("none"):
        lines.append("%s: 0 wrong tokens, diff %.2e; async failed layers %d, errors %d; sync "
                     "failed layers %d, errors %d" % (name, a["max_abs_diff"], a["failed_layers"],
                     a["errors"], runs["sync"]["failed_layers"], runs["sync"]["errors"]))
        continue
    ratio = c["async_over_sync_stall_ms"]
    for m, r in runs.items():
        after = r["imbalance_after_first_rebalance"]
        if r["imbalance_first"] < 1.8 or after is None or after > 1.10:
            bad.append("%s %s: imbalance %.3f -> %s" % (name, m, r["imbalance_first"], after))
    if a["serving_us_p99"] > 100:
        bad.append("%s: async serving p99 %.1f us" % (name, a["serving_us_p99"]))
    if name.split("_")[1] in stall_sizes and (ratio is None or ratio > 1 / 3):
        bad.append("%s: async/sync stall %s" % (name, ratio))
    lines.append("%s: imbalance %.3f -> %.3f async / %.3f sync; async serving p50 %.1f p99 %.1f us; "
                 "stall async %+.2f ms / sync %+.2f ms = %.2f (calls %.2f / %.2f ms); step median "
                 "%.1f / %.1f ms" % (name, a["imbalance_first"], a["imbalance_after_first_rebalance"],
                 runs["sync"]["imbalance_after_first_rebalance"], a["serving_us_p50"],
                 a["serving_us_p99"], a["rebalance_stall_ms"], runs["sync"]["rebalance_stall_ms"],
                 ratio if ratio is not None else float("nan"), a["rebalance_call_ms"],
                 runs["sync"]["rebalance_call_ms"], a["step_ms_median"],
                 runs["sync"]["step_ms_median"]))
print("4 CPU ranks on gloo, %s cores, workload %s; stall third judged at %s" % (
    cores, rep["runs"][0]["workload"] if rep else "-", " ".join(stall_sizes)))
for line in lines:
    print("    " + line)
if bad:
    print("not met: " + "; ".join(bad))
    sys.exit(1)
PYEOF
  ); then
    verdict $st PASS "$(echo "$res" | head -1)"
  else
    verdict $st FAIL "$(echo "$res" | tail -1) (logs: $logs/torch_ep_*.log)"
  fi
  echo "$res" | tail -n +2 | grep -v '^not met' | tee -a "$SUMMARY_FILE"
}

finish() {
  say "verdict: $([ $FAILED = 0 ] && echo 'no step failed' || echo 'a step failed')"
  if [ -n "${OUT:-}" ] && [ -d "${OUT:-}" ]; then
    cp "$SUMMARY_FILE" "$OUT/gpu-summary.txt"
    # The logs too (one file), so that a failure can be read without running again.
    tar -czf "$OUT/gpu-logs.tgz" -C "$BUNDLE" logs 2>/dev/null || true
  fi
  echo "summary: $SUMMARY_FILE"
}

# Only the torch example's step (the extension built first): what a short lease can afford when
# the rest has run already. EP_SIZES, EP_RUNS and EP_FAULTS choose the runs.
example() {
  SUMMARY_FILE="${SUMMARY:-$BUNDLE/summary.txt}"
  mkdir -p "$(dirname "$SUMMARY_FILE")" "$BUNDLE/logs"
  : >"$SUMMARY_FILE"
  say "gpu-check example: $(date -u +%FT%TZ), commit $(cat "$BUNDLE/commit" 2>/dev/null || echo '?'), $(nproc) cores"
  if ! build_torch_extension; then
    verdict torch-ep-example FAIL "$TORCH_BUILD_ERROR"
  else
    torch_ep_example
  fi
  finish
}

case "$MODE" in
  build) build "$@" ;;
  run)
    run
    exit $FAILED
    ;;
  example)
    example
    exit $FAILED
    ;;
  *)
    echo "usage: scripts/gpu-check.sh build [cmake args...] | run | example" >&2
    exit 2
    ;;
esac
