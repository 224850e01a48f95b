#!/usr/bin/env bash
# The whole test suite, as CI runs it (.ci/run calls exactly this):
# installs the pinned tools into .tools/, then formatting, lints, and every
# test of the workspace — unit, router, Lambda-mode, property, template checks
# (cfn-lint, checkov, cfn-guard, sam build), build script, moto emulator and
# local pipeline rehearsal tests.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup-tools.sh

export PATH="$PWD/.tools/venv/bin:$PWD/.tools/cargo/bin:$PATH"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
export SAM_CLI_TELEMETRY=0
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy --all-targets -- -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== cargo test"
cargo test --workspace --locked
