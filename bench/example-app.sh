#!/usr/bin/env bash
# The example app (examples/orders, issue 12): its warm full rehearsal
# (`cargo rehearse --app examples/orders`, every stage, its table and queue
# in moto, each function as its own role; target <= 60 s), then moto's
# start-up and the latency the rehearsal's AWS proxy adds to a function's
# SDK call (target <= 5 ms median), from bench/local-resources.sh.
#
#   bench/example-app.sh [RUNS]     (default 3 timed rehearsals after one warm-up)
set -euo pipefail
cd "$(dirname "$0")/.."
NAME=example-app REHEARSE_ARGS="--app examples/orders" bench/rehearsal.sh "${1:-3}"
echo
bench/local-resources.sh 3 200
