#!/usr/bin/env bash
# Installs every tool the build, the checks and the tests need, pinned, into
# .tools/ inside the repository (git-ignored). Idempotent: a second run only
# checks that the pinned versions are present. Nothing is installed globally
# except the rustup target for arm64 cross-compilation.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
TOOLS=$ROOT/.tools

# Pinned versions (see ../shared/TOOLCHAIN.md for what was measured on this machine).
CARGO_LAMBDA_VERSION=1.9.2
ZIGLANG_VERSION=0.17.1
SAM_CLI_VERSION=1.170.0
CFN_LINT_VERSION=1.58.0
MOTO_VERSION=5.2.5
CHECKOV_VERSION=3.3.30
CFN_GUARD_VERSION=3.2.1

PY=${PYTHON:-python3}
stamp() { echo "$TOOLS/.stamp-$1"; }

# Main tool venv: cargo-lambda (+zig for cross-compiling), SAM CLI, cfn-lint, moto.
want="cargo-lambda==$CARGO_LAMBDA_VERSION ziglang==$ZIGLANG_VERSION aws-sam-cli==$SAM_CLI_VERSION cfn-lint[junit]==$CFN_LINT_VERSION moto[server]==$MOTO_VERSION"
if [ "$(cat "$(stamp venv)" 2>/dev/null)" != "$want" ]; then
  echo "setup-tools: installing $want into .tools/venv"
  "$PY" -m venv "$TOOLS/venv"
  "$TOOLS/venv/bin/pip" install --quiet --disable-pip-version-check $want
  echo "$want" > "$(stamp venv)"
fi

# CodeBuild (buildspec.yml) needs only the venv above: checkov and cfn-guard
# run in the repository's test suite, not in the pipeline's build.
if [ "${SETUP_TOOLS_BUILD_ONLY:-}" = 1 ]; then
  echo "setup-tools: build tools ready (.tools/venv/bin)"
  exit 0
fi

# checkov gets its own venv: it pins boto3 to versions the others do not accept.
want="checkov==$CHECKOV_VERSION"
if [ "$(cat "$(stamp checkov)" 2>/dev/null)" != "$want" ]; then
  echo "setup-tools: installing $want into .tools/checkov-venv"
  "$PY" -m venv "$TOOLS/checkov-venv"
  "$TOOLS/checkov-venv/bin/pip" install --quiet --disable-pip-version-check "$want"
  echo "$want" > "$(stamp checkov)"
fi

# cfn-guard builds from crates.io (about 4 minutes on 2 cores).
want="cfn-guard@$CFN_GUARD_VERSION"
if [ "$(cat "$(stamp guard)" 2>/dev/null)" != "$want" ]; then
  echo "setup-tools: building $want into .tools/cargo"
  cargo install --quiet --locked --root "$TOOLS/cargo" cfn-guard --version "$CFN_GUARD_VERSION"
  echo "$want" > "$(stamp guard)"
fi

# Rust target for the arm64 Lambda binaries (cargo-lambda would add it itself,
# but doing it here keeps the first build's output clean).
if command -v rustup >/dev/null && ! rustup target list --installed | grep -qx aarch64-unknown-linux-gnu; then
  rustup target add aarch64-unknown-linux-gnu
fi

echo "setup-tools: ready (.tools/venv/bin, .tools/checkov-venv/bin, .tools/cargo/bin)"
