#!/usr/bin/env bash
# moto for the rehearsal (issue 12): start-up time, a stack's resources
# through moto's CloudFormation, the latency of a function's SDK call
# routed to moto (signed DynamoDB GetItem and SQS SendMessage, medians),
# with and without IAM enforcement; then what the rehearsal's AWS proxy
# (crates/rehearse/src/aws_proxy.rs) adds to such a call (direct to moto
# vs through the proxy, median and p90, IAM enforced, role credentials),
# and moto's start as the rehearsal does it, cold at the first deploy and
# warmed up during the build (Moto::warm_up).
#
#   bench/local-resources.sh [start-ups] [calls] [build seconds]
#                                          (defaults 3, 200 and 5)
#
# Needs moto from scripts/setup-tools.sh (any mode). Debug build, like the
# tests; the numbers are moto's (Python), not ours, except the proxy's.
# The proxy lives in crates/rehearse, which the local-resources example
# cannot use: its part runs as the ignored test
# `bench_proxy_latency_and_moto_warm_up` of crates/rehearse/tests/local_resources.rs.
set -euo pipefail
cd "$(dirname "$0")/.."
MOTO=.tools/venv/bin/moto_server
[ -x "$MOTO" ] || { echo "bench: $MOTO missing: run scripts/setup-tools.sh rehearsal" >&2; exit 1; }
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target}
cargo build --quiet -p local-resources --example moto_bench
echo "machine: $(nproc) cores, $(uname -sm); moto $(.tools/venv/bin/python -c 'import moto; print(moto.__version__)' 2>/dev/null)"
"$CARGO_TARGET_DIR/debug/examples/moto_bench" "$MOTO" "${1:-3}" "${2:-200}"
echo "the rehearsal's AWS proxy, and moto's warm-up:"
REHEARSE_BENCH_CALLS="${2:-200}" REHEARSE_BENCH_BUILD_SECS="${3:-5}" \
  cargo test --quiet -p rehearse --test local_resources bench_proxy_latency_and_moto_warm_up \
  -- --ignored --nocapture 2>/dev/null \
  | grep -E '^(signed|moto start|with warm_up)' | sed 's/^/  /'
