#!/usr/bin/env bash
# Soak: the demo for 20,000 steps on 8 in-process ranks with a seeded random fault (every kind,
# random ranks, random cycles), then 4 MPI processes for 3,000 steps; every token output is
# checked against the reference. Fails unless there are 0 mismatches, every fault kind was seen
# and counted in its own counter, rebalances still completed, and resident memory stayed flat
# after warm-up (growth at most SOAK_RSS_MB, default 8 MB).
# Not part of the default suite (ctest label `soak`): `ctest -L soak` or `bash scripts/soak.sh`.
# Usage: BUILD_DIR=build SOAK_STEPS=20000 SOAK_MPI_STEPS=3000 bash scripts/soak.sh
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR="${BUILD_DIR:-build}"
CLI="$BUILD_DIR/src/swiftbalancer"
STEPS="${SOAK_STEPS:-20000}"
MPI_STEPS="${SOAK_MPI_STEPS:-3000}"
RSS_MB="${SOAK_RSS_MB:-8}"
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
# Small, fast steps: many cycles (interval 20), a fault in half of them.
common=(--mode async --interval 20 --window 2 --tokens 32 --layers 6 --slots 6 --link-gbps 0
        --fault-rate 0.5 --fault-seed 7 --transfer-timeout-ms 100 --quiet)

check() {  # report.json label
  python3 - "$1" "$2" "$RSS_MB" <<'PY'
import json, sys
path, label, rss_mb = sys.argv[1], sys.argv[2], float(sys.argv[3])
runs = json.load(open(path))["runs"]
ok = True
for run in runs:
    t = run["totals"]
    growth = (t["rss_end_kb"] - t["rss_warm_kb"]) / 1024.0
    print(f"{label} {run['mode']}: {len(run['steps'])} steps, {t['verified_tokens']} verified, "
          f"{t['mismatches']} mismatches, rebalances {t['rebalances']}, cycles started "
          f"{t['cycles_started']} dropped {t['cycles_dropped']}, faults: transfer "
          f"{t['transfer_failures']}, worker {t['worker_failures']}, invalid placement "
          f"{t['invalid_placements']}, collective {t['collective_failures']}; resident "
          f"{t['rss_warm_kb'] / 1024:.1f} MB after warm-up, {t['rss_end_kb'] / 1024:.1f} MB at "
          f"the end ({growth:+.1f} MB)")
    if t["mismatches"] != 0: print("  FAIL: mismatches"); ok = False
    for k in ("transfer_failures", "worker_failures", "invalid_placements", "rebalances"):
        if t[k] <= 0: print(f"  FAIL: no {k}"); ok = False
    if growth > rss_mb: print(f"  FAIL: resident memory grew {growth:.1f} MB"); ok = False
sys.exit(0 if ok else 1)
PY
}

echo "soak: $STEPS steps on 8 in-process ranks"
"$CLI" demo --ranks 8 --experts 32 --steps "$STEPS" "${common[@]}" --report "$out/inprocess.json" >/dev/null
check "$out/inprocess.json" "in-process"

if command -v mpirun >/dev/null && [ "$MPI_STEPS" -gt 0 ]; then
  echo "soak: $MPI_STEPS steps on 4 MPI processes"
  mpirun --oversubscribe --allow-run-as-root -np 4 "$CLI" demo --transport mpi --ranks 4 \
    --experts 16 --steps "$MPI_STEPS" "${common[@]}" --report "$out/mpi.json" >/dev/null
  check "$out/mpi.json" "mpi"
fi
echo "soak: passed"
