#!/usr/bin/env bash
# ctest `mpi_rank_kill`: runs tests/transport/mpi_rank_kill_mpi.cpp under mpirun (4 processes;
# the last is killed with SIGKILL mid-cycle) and checks what every process wrote, one line per
# step (the format is in the .cpp). Usage: mpi_rank_kill.sh <binary> <mpirun and its options...>
#
# Under OpenMPI the job is started with --enable-recovery, which keeps it running when a process
# dies: every survivor must then serve all its steps ("done"). Without it (or under another MPI)
# mpirun may tear the survivors down soon after the death; what is checked then is what they
# proved before that. Either way: no invariant broke (no FAIL line: every step a survivor served
# had bounded calls and a placement consistent with its bytes), each survivor served steps after
# the death and reported the failure (a "reported:" or an error line from the balancer), a
# transfer timeout names the dead rank, and the job ended within its bound (no hang).
set -u
bin="$1"
shift
# OpenMPI's --enable-recovery keeps the job running when a process dies (without it, 4.1 tears
# the survivors down a few steps after the death). With it every survivor must finish its steps.
recovery=0
if "$1" --version 2>/dev/null | grep -qE "Open MPI|OpenRTE"; then
  mpirun="$1"
  shift
  set -- "$mpirun" --enable-recovery "$@"
  recovery=1
fi
dir="$(mktemp -d)"
trap 'rm -rf "$dir"' EXIT
# Survivors keep serving while mpirun decides; 120 s is far beyond what the run needs (a hang
# is what this bound catches: ctest's own TIMEOUT is above it).
start=$SECONDS
timeout -k 5 120 "$@" "$bin" "$dir" >"$dir/mpirun.out" 2>&1
rc=$?
elapsed=$((SECONDS - start))
# mpirun passes on the status of the process that failed: 137 is the victim's SIGKILL.
echo "mpirun exit status: $rc after $elapsed s"
status=0
fail() {
  echo "FAIL: $*"
  status=1
}
if [ "$elapsed" -ge 120 ]; then fail "the job did not end within 120 s (a hang)"; fi
nranks=4
victim=$((nranks - 1))
if ! grep -q "^victim: killing at step" "$dir/rank$victim.log" 2>/dev/null; then
  fail "the victim never reached the middle of a cycle"
fi
kill_step=$(sed -n 's/^victim: killing at step \([0-9]*\)$/\1/p' "$dir/rank$victim.log" 2>/dev/null)
for ((r = 0; r < victim; ++r)); do
  f="$dir/rank$r.log"
  [ -f "$f" ] || {
    fail "rank $r wrote nothing"
    continue
  }
  if grep -q "^FAIL" "$f"; then fail "rank $r: $(grep -m3 '^FAIL' "$f" | tr '\n' ' ')"; fi
  last=$(grep -c '^step .* ok$' "$f")
  reported=$(grep -m1 '^reported: ' "$f")
  errline=$(grep -m1 '^log: error ' "$f")
  done_line=$(grep -m1 '^done ' "$f")
  echo "rank $r: $last steps served (victim died at step ${kill_step:-?}); ${done_line:-torn down by mpirun before done}"
  echo "rank $r: ${reported:-no reported line}"
  [ -n "$errline" ] && echo "rank $r: first error: ${errline#log: error }"
  if [ -z "$errline" ] && [ -z "$reported" ]; then
    fail "rank $r: served $last steps but never reported the failure"
  fi
  if [ "$recovery" -eq 1 ] && [ -z "$done_line" ]; then
    fail "rank $r: did not serve all its steps although the job was kept running"
  fi
  # A survivor whose transfers timed out names the rank it was still waiting on: the dead one.
  if grep '^log: error .*did not complete by the deadline' "$f" | grep -qv "still waiting on .*rank $victim:"; then
    fail "rank $r: a transfer timeout that does not name rank $victim"
  fi
  if [ -n "$kill_step" ] && [ "$last" -le "$kill_step" ]; then
    fail "rank $r: no step served after the victim died (step $kill_step)"
  fi
done
if [ $status -ne 0 ]; then
  echo "--- mpirun output"
  tail -30 "$dir/mpirun.out"
  for f in "$dir"/rank*.log; do
    echo "--- $f"
    grep -v '^step' "$f" | head -20
    grep '^step' "$f" | tail -5
  done
fi
exit $status
