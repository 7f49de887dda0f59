#!/usr/bin/env bash
# The GPU check (issue 10): configure with the CUDA device path on, build the device tests, the
# device benchmark and the command, run both and `demo --device cuda` (async and sync, with and
# without each injected fault; every run must end with 0 mismatched token outputs), then, with 2
# or more GPUs, `demo --device cuda --transport mpi` under mpirun (one GPU per process, NCCL for
# the weights; the demo exits 1 on any mismatched output). Needs the CUDA toolkit and NCCL
# (/usr/local/cuda) and, for figures, one GPU; without a GPU the tests skip and the benchmark says
# "no CUDA device".
# Budget: 8 minutes on one H200 (the build is most of it; the tests and benchmark take seconds;
# each demo run is bounded by `timeout`).
# Last, with 2 or more GPUs and torch importable: the torch runtime (swiftbalancer._torch) with
# CUDA expert tensors on NCCL and counts on gloo, one process per GPU
# (tests/python/torch_balancer_worker.py with SB_DEVICE=cuda).
# Usage: scripts/gpu-check.sh [extra cmake args...]
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR="${BUILD_DIR:-build-gpu}"
JOBS="${JOBS:-$(nproc)}"
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release -DSWIFTBALANCER_CUDA=ON \
  -DSWIFTBALANCER_PYTHON=OFF "$@"
cmake --build "$BUILD_DIR" -j "$JOBS" --target device_tests device_bench swiftbalancer_cli
echo "== device tests"
timeout 300 "$BUILD_DIR/tests/device_tests"
echo "== device benchmark"
timeout 120 "$BUILD_DIR/bench/device_bench"
echo "== demo --device cuda"
for fault in none transfer-timeout worker-exception bad-placement; do
  echo "-- --inject-fault $fault"
  timeout 120 "$BUILD_DIR/src/swiftbalancer" demo --device cuda --mode async,sync --steps 300 \
    --quiet --inject-fault "$fault" --report "$BUILD_DIR/demo_cuda_$fault.json"
done
echo "== demo --device cuda --transport mpi (NCCL, one GPU per process)"
GPUS=0
command -v nvidia-smi >/dev/null && GPUS=$(nvidia-smi -L 2>/dev/null | grep -c '^GPU ' || true)
if [ "$GPUS" -lt 2 ]; then
  echo "skipped: the NCCL demo needs 2 GPUs (nvidia-smi reports $GPUS)"
elif ! command -v mpirun >/dev/null; then
  echo "skipped: mpirun not found (the NCCL demo runs one process per GPU under mpirun)"
else
  NP=$((GPUS < 4 ? GPUS : 4))
  ROOT_FLAG=()
  [ "$(id -u)" = 0 ] && ROOT_FLAG=(--allow-run-as-root)
  # --oversubscribe: a container may show mpirun fewer slots than cores; 4 processes at most.
  timeout 180 mpirun --oversubscribe "${ROOT_FLAG[@]}" -np "$NP" "$BUILD_DIR/src/swiftbalancer" \
    demo --device cuda --transport mpi --mode async,sync --steps 300 --quiet \
    --report "$BUILD_DIR/demo_cuda_mpi.json"
  # Exit 0 means 0 mismatched outputs (the demo exits 1 on any); the report's totals say it too.
  echo "NCCL demo on $NP GPUs passed (report: $BUILD_DIR/demo_cuda_mpi.json)"
fi

echo "== torch runtime on CUDA (swiftbalancer._torch: NCCL weights, gloo counts, one GPU per rank)"
PY="${PYTHON:-python3}"
TGPUS=$("$PY" -c "import torch; print(torch.cuda.device_count())" 2>/dev/null || echo 0)
if [ "$TGPUS" -lt 2 ]; then
  echo "skipped: needs torch with 2 or more CUDA devices ($TGPUS seen; NCCL refuses two ranks on one GPU)"
else
  cmake -S . -B "$BUILD_DIR-py" -DCMAKE_BUILD_TYPE=Release -DSWIFTBALANCER_PYTHON=ON \
    -DSWIFTBALANCER_TESTS=OFF -DSWIFTBALANCER_BENCH=OFF -DSWIFTBALANCER_MPI=OFF \
    -DPython_EXECUTABLE="$(command -v "$PY")"
  cmake --build "$BUILD_DIR-py" -j "$JOBS" --target swiftbalancer_python
  NP=$((TGPUS < 4 ? TGPUS : 4))
  OUT="$BUILD_DIR-py/torch_cuda"
  rm -rf "$OUT" && mkdir -p "$OUT"
  PORT=$((29500 + RANDOM % 1000))
  for r in $(seq 0 $((NP - 1))); do
    PYTHONPATH="$BUILD_DIR-py/python" RANK=$r WORLD_SIZE=$NP MASTER_ADDR=127.0.0.1 \
      MASTER_PORT=$PORT SB_DEVICE=cuda timeout 120 "$PY" tests/python/torch_balancer_worker.py \
      move "$OUT" &
  done
  wait
  # Every rank: 0 slots holding another expert than its table says, the same placements, at
  # least one rebalance, and the bytes moved.
  "$PY" - "$OUT" "$NP" <<'PYEOF'
import json, os, sys
out, n = sys.argv[1], int(sys.argv[2])
rs = [json.load(open(os.path.join(out, "rank%d.json" % r))) for r in range(n)]
assert all(r["wrong_slots"] == 0 for r in rs), "a slot held the wrong expert"
assert all(r["placements"] == rs[0]["placements"] for r in rs), "ranks disagree"
c = [r["counters"] for r in rs]
assert all(x["rebalances"] >= 1 and x["layers_failed"] == 0 for x in c), c
print("torch CUDA runtime on %d GPUs passed: %d layers committed, %d bytes received" %
      (n, c[0]["layers_committed"], sum(x["bytes_received"] for x in c)))
PYEOF
fi
