#!/usr/bin/env bash
# Benchmark of Prod safety in `cargo rehearse` (not part of scripts/test.sh):
#   - the two-commit scenario, warm: one `cargo rehearse --watch` rehearses a
#     good commit through Prod, then a commit whose Prod function fails
#     every request (an empty STAGE, set only in prod), which the canary's
#     alarms catch; wall time from the start to the end of the second run
#     (target <= 90 s at the default time scale, 1 AWS minute = 1 s);
#   - time from an alarm's breach (the close of the breaching period, when
#     CloudWatch would see it) to all traffic on the previous version
#     (target <= 1 s), as the rehearsal prints it.
#
#   bench/prod-safety.sh [RUNS] [--parameter NAME=VALUE ...]
#       (default 2 timed runs after one warm-up; extra arguments go to
#       cargo rehearse, e.g. --parameter ProdBakeMinutes=5 or --minute-seconds 0.5)
#
# Runs on a scratch copy of the working tree (as the tests do), with the work
# directory and tools of this repository so the build stays warm. Logs:
# bench/results/prod-safety-<n>.log.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-2}
shift || true
EXTRA=("$@")
ROOT=$PWD
OUT=bench/results
mkdir -p "$OUT"

scripts/setup-tools.sh rehearsal
cargo build --quiet -p rehearse
BIN=${CARGO_TARGET_DIR:-target}/debug/rehearse

SCRATCH=$(mktemp -d)
trap 'rm -rf "$SCRATCH"' EXIT
REPO=$SCRATCH/repo
mkdir -p "$REPO"
# The tree under test: committed and uncommitted files (not ignored ones),
# through a temporary index, so the repository's own index is untouched.
INDEX=$SCRATCH/index
cp "$(git rev-parse --git-path index)" "$INDEX"
GIT_INDEX_FILE=$INDEX git add --all .
TREE=$(GIT_INDEX_FILE=$INDEX git write-tree)
git archive --format=tar "$TREE" | tar -x -C "$REPO"
g() { git -C "$REPO" -c user.email=bench@example.com -c user.name=bench "$@"; }
g init -q -b main
g add --all .
g commit -qm "good: the tree under test"
GOOD=$(g rev-parse HEAD)
python3 - "$REPO/app-sam.yaml" <<'PY'
import sys
path = sys.argv[1]
text = open(path).read()
text = text.replace("\nResources:\n", "\nConditions:\n  IsProd: !Equals [!Ref Stage, prod]\n\nResources:\n", 1)
text = text.replace("STAGE: !Ref Stage", 'STAGE: !If [IsProd, "", !Ref Stage]', 1)
open(path, "w").write(text)
PY
g commit -qam "bad: prod refuses to start"
BAD=$(g rev-parse HEAD)
g update-ref refs/heads/main "$GOOD"
g checkout -q main

# exec: in the background, $! is then the rehearsal itself (Ctrl-C stops it).
rehearse() {
  exec "$BIN" --repo "$REPO" --work-dir "$ROOT/.rehearsal" --tools-dir "$ROOT/.tools" \
    --approve "${EXTRA[@]}" "$@"
}

# One two-commit scenario; prints its wall time in ms.
scenario() {
  local log=$1
  g update-ref refs/heads/main "$GOOD"
  local start end
  start=$(date +%s%N)
  rehearse --watch --poll-interval 1 > "$log" 2>&1 &
  local pid=$!
  # First run done: push the bad commit.
  until [ "$(grep -c '^Watching for new commits' "$log" || true)" -ge 1 ]; do
    kill -0 "$pid" 2>/dev/null || { echo "bench: rehearse exited, see $log" >&2; exit 1; }
    sleep 0.2
  done
  g update-ref refs/heads/main "$BAD"
  until [ "$(grep -c '^Watching for new commits' "$log" || true)" -ge 2 ]; do
    kill -0 "$pid" 2>/dev/null || { echo "bench: rehearse exited, see $log" >&2; exit 1; }
    sleep 0.1
  done
  end=$(date +%s%N)
  kill -INT "$pid"
  wait "$pid" || true
  echo $(( (end - start) / 1000000 ))
}

echo "bench: warm-up (builds what changed)..."
scenario "$OUT/prod-safety-warmup.log" > /dev/null

for i in $(seq 1 "$RUNS"); do
  scenario "$OUT/prod-safety-$i.log" > "$OUT/prod-safety-$i.wall-ms"
done

python3 - "$OUT" "$RUNS" <<'PY'
import re, sys, statistics
out, runs = sys.argv[1], int(sys.argv[2])
walls, rollbacks, canary = [], [], []
for i in range(1, runs + 1):
    walls.append(int(open(f"{out}/prod-safety-{i}.wall-ms").read()) / 1000)
    log = open(f"{out}/prod-safety-{i}.log").read()
    if "Prod/Deploy: alarm" not in log or "rolled back to" not in log:
        sys.exit(f"bench: run {i} did not roll Prod back; see {out}/prod-safety-{i}.log")
    for m in re.finditer(r"all traffic back on version \d+ (\d+) ms after the breaching period closed", log):
        rollbacks.append(int(m.group(1)))
    for m in re.finditer(r"Prod/Deploy failed after ([\d.]+) s", log):
        canary.append(float(m.group(1)))
print(f"two-commit scenario, warm (good to Prod, then bad caught by the canary), {runs} runs: "
      f"median {statistics.median(walls):.1f} s, max {max(walls):.1f} s  (target <= 90 s)")
print(f"alarm breach (breaching period closed) -> all traffic on the previous version: "
      f"median {statistics.median(rollbacks)} ms, max {max(rollbacks)} ms  (target <= 1000 ms)")
print(f"Prod/Deploy of the bad commit (shift start -> failed, rollback included): "
      f"median {statistics.median(canary):.1f} s")
PY
