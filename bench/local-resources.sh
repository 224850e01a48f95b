#!/usr/bin/env bash
# moto for the rehearsal (issue 12): start-up time, a stack's resources
# through moto's CloudFormation, and the latency of a function's SDK call
# routed to moto (signed DynamoDB GetItem and SQS SendMessage, medians),
# with and without IAM enforcement.
#
#   bench/local-resources.sh [start-ups] [calls]     (defaults 3 and 200)
#
# Needs moto from scripts/setup-tools.sh (any mode). Debug build, like the
# tests; the numbers are moto's (Python), not ours.
set -euo pipefail
cd "$(dirname "$0")/.."
MOTO=.tools/venv/bin/moto_server
[ -x "$MOTO" ] || { echo "bench: $MOTO missing: run scripts/setup-tools.sh rehearsal" >&2; exit 1; }
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target}
cargo build --quiet -p local-resources --example moto_bench
echo "machine: $(nproc) cores, $(uname -sm); moto $(.tools/venv/bin/python -c 'import moto; print(moto.__version__)' 2>/dev/null)"
"$CARGO_TARGET_DIR/debug/examples/moto_bench" "$MOTO" "${1:-3}" "${2:-200}"
