#!/usr/bin/env bash
# TimeService benchmark: builds in release mode, then prints
#   - requests/s and p50/p99 latency for /time and /time/America/New_York
#     under concurrent load (wrk, from Debian's packages) on loopback;
#   - local start-up: spawn of the release binary as a local server to its
#     first 200 on loopback, median of 30 starts (not a Lambda cold start);
#   - peak RSS of the server under load (VmHWM);
#   - size of the arm64 Lambda deployment zip (cargo lambda, release profile).
#   - if nginx is installed, the loopback ceiling: the same load against nginx
#     answering a constant 200 (what wrk and the kernel manage when the server
#     does almost nothing).
# Usage: bench/time-service.sh [seconds-per-load-run, default 10]
# Needs wrk (apt-get install -y wrk); nginx-light for the ceiling.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${1:-10}
export PATH="$PWD/.tools/venv/bin:$PWD/.tools/cargo/bin:$PATH"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"

command -v wrk >/dev/null || { echo "wrk is missing: apt-get install -y wrk" >&2; exit 1; }
scripts/setup-tools.sh rehearsal   # cargo-lambda and zig, for the arm64 zip

echo "== building (release)"
cargo build --release -q -p time-service
BIN=$CARGO_TARGET_DIR/release/time-service

python3 bench/measure.py "$BIN" "$DURATION"

echo "== arm64 deployment zip"
rm -rf "$CARGO_TARGET_DIR/lambda/time-service"
# From the package directory, as scripts/build.sh and `sam build` do, so no
# other workspace member's features are unified into the build.
(cd functions/time-service &&
  cargo lambda build --release --arm64 --output-format zip -p time-service --bin time-service >/dev/null 2>&1)
ZIP=$CARGO_TARGET_DIR/lambda/time-service/bootstrap.zip
bytes=$(stat -c %s "$ZIP")
awk -v b="$bytes" 'BEGIN { printf "arm64 zip: %d bytes (%.2f MB = %.2f MiB, target <= 1 MB)\n", b, b/1e6, b/1048576 }'
