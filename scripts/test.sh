#!/usr/bin/env bash
# The whole test suite, as CI runs it (.ci/run calls exactly this):
# installs the pinned tools into .tools/, then formatting, lints, and every
# test of the workspace — unit, router, Lambda-mode, property, template checks
# (cfn-lint, checkov, cfn-guard, sam build), build script, moto emulator and
# local pipeline rehearsal tests (the console page's in headless Chromium,
# installed here from Debian's packages when missing and running as root).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup-tools.sh

# The console page's browser test (crates/rehearse/tests/console_page.rs)
# needs headless Chromium, from Debian's packages (no browser download).
if ! command -v chromium >/dev/null 2>&1 && [ -z "${CHROMIUM:-}" ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "== installing chromium (Debian package) for the console's browser test"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null
    else
        echo "scripts/test.sh: the console's browser test needs Chromium: install Debian's package" >&2
        echo "  sudo apt-get install -y --no-install-recommends chromium" >&2
        echo "or set CHROMIUM to a chromium binary." >&2
        exit 1
    fi
fi

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
