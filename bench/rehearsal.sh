#!/usr/bin/env bash
# Benchmark of `cargo rehearse`: wall time of a full rehearsal with a warm
# build, and of the gate alone (start-tests invoked -> job result reported),
# for each stage's gate. Targets: full warm rehearsal <= 60 s, gate <= 1 s.
#
#   bench/rehearsal.sh [RUNS]     (default 3 timed runs after one warm-up)
#
# Results: bench/results/<NAME>-<n>.json (the rehearsal's --json report)
# and a summary on stdout. Installs what it needs with
# `scripts/setup-tools.sh rehearsal`. NAME (default rehearsal) and
# REHEARSE_ARGS (more arguments of every run, e.g. `--app examples/orders`)
# come from the environment: bench/example-app.sh uses them.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-3}
OUT=bench/results
NAME=${NAME:-rehearsal}
read -r -a EXTRA <<< "${REHEARSE_ARGS:-}"
mkdir -p "$OUT"

scripts/setup-tools.sh rehearsal
cargo build --quiet -p rehearse
BIN=${CARGO_TARGET_DIR:-target}/debug/rehearse

# Warm-up: builds whatever changed since the last rehearsal, so the timed
# runs measure a warm build, as a developer's second run would.
echo "bench: warm-up rehearsal (may build the functions)..."
"$BIN" --approve --no-live "${EXTRA[@]}" --json "$OUT/$NAME-warmup.json" > "$OUT/$NAME-warmup.log" 2>&1 \
  || { echo "bench: the warm-up rehearsal failed, see $OUT/$NAME-warmup.log" >&2; exit 1; }

for i in $(seq 1 "$RUNS"); do
  start=$(date +%s%N)
  "$BIN" --approve --no-live "${EXTRA[@]}" --json "$OUT/$NAME-$i.json" > "$OUT/$NAME-$i.log" 2>&1 \
    || { echo "bench: rehearsal $i failed, see $OUT/$NAME-$i.log" >&2; exit 1; }
  end=$(date +%s%N)
  echo "$(( (end - start) / 1000000 ))" > "$OUT/$NAME-$i.wall-ms"
done

python3 - "$OUT" "$RUNS" "$NAME" <<'PY'
import json, sys, statistics
out, runs, name = sys.argv[1], int(sys.argv[2]), sys.argv[3]
walls, gates, stage_times = [], [], {}
for i in range(1, runs + 1):
    walls.append(int(open(f"{out}/{name}-{i}.wall-ms").read()) / 1000)
    report = json.load(open(f"{out}/{name}-{i}.json"))
    for stage in report["stages"]:
        stage_times.setdefault(stage["name"], []).append(stage["durationMs"] / 1000)
        for action in stage["actions"]:
            if action["category"] == "Invoke" and action["provider"] == "Lambda":
                gates.append((stage["name"], action["durationMs"] / 1000))
print(f"full warm rehearsal (wall, {runs} runs): median {statistics.median(walls):.1f} s, "
      f"max {max(walls):.1f} s  (target <= 60 s)")
for name, times in stage_times.items():
    print(f"  stage {name:<12} median {statistics.median(times):.2f} s")
g = [t for _, t in gates]
print(f"gate, start-tests invoked -> job result ({len(g)} gates): median {statistics.median(g):.2f} s, "
      f"max {max(g):.2f} s  (target <= 1 s)")
PY
