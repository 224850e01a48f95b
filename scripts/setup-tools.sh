#!/usr/bin/env bash
# Installs the pinned tools into .tools/ inside the repository (git-ignored).
# Nothing is installed globally except, for the arm64 builds, the rustup
# target aarch64-unknown-linux-gnu.
#
#   scripts/setup-tools.sh rehearsal   what `cargo rehearse` needs (about 45 s)
#   scripts/setup-tools.sh build       what CodeBuild's buildspec.yml needs
#   scripts/setup-tools.sh             everything scripts/test.sh needs
#
# | tool                          | where                | rehearsal | build | (tests) |
# |-------------------------------|----------------------|-----------|-------|---------|
# | cargo-lambda, zig (ziglang),  | .tools/venv/bin      |     x     |   x   |    x    |
# |   PyYAML (build.sh templates) |                      |           |       |         |
# | SAM CLI (sam), cfn-lint       | .tools/venv/bin      |           |   x   |    x    |
# | moto (moto_server)            | .tools/venv/bin      |     x     |       |    x    |
# | checkov                       | .tools/checkov-venv  |           |   x   |    x    |
# | cfn-guard (from crates.io)    | .tools/cargo/bin     |           |   x   |    x    |
# | rustup target aarch64         | rustup               |           |   x   |    x    |
#
# One venv holds everything the build script and the tests run, because
# `sam build` finds cargo-lambda on PATH and the tests look tools up in
# .tools/venv/bin; a mode only adds the packages it needs to it, so the
# rehearsal's install stays small (no SAM CLI, whose dependency tree is most
# of the venv). checkov has its own venv: it pins boto3 to versions the others
# do not accept.
#
# Idempotent: each group is recorded in a stamp file under .tools/, and a
# second run only compares the stamps with the pins below. Changing a pin
# reinstalls that group. PYTHON picks the interpreter (default python3, 3.9+).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
TOOLS=$ROOT/.tools

usage() {
  echo "usage: $0 [rehearsal|build]   (no argument: every tool the test suite needs)" >&2
  exit 2
}
MODE=${1:-test}
[ $# -le 1 ] || usage
case "$MODE" in
  rehearsal|build|test) ;;
  -h|--help) usage ;;
  *) echo "setup-tools: unknown mode '$MODE'" >&2; usage ;;
esac

# Pinned versions (facts about them: docs/toolchain.md).
CARGO_LAMBDA_VERSION=1.9.2
ZIGLANG_VERSION=0.17.1
PYYAML_VERSION=6.0.4
SAM_CLI_VERSION=1.170.0
CFN_LINT_VERSION=1.58.0
MOTO_VERSION=5.2.5
CHECKOV_VERSION=3.3.30
CFN_GUARD_VERSION=3.2.1

PY=${PYTHON:-python3}
command -v "$PY" >/dev/null || { echo "setup-tools: $PY not found: install Python 3.9+ or set PYTHON" >&2; exit 1; }
"$PY" -c 'import sys, venv, ensurepip; sys.exit(sys.version_info < (3, 9))' 2>/dev/null || {
  echo "setup-tools: $PY must be Python 3.9+ with the venv module (Debian/Ubuntu: apt-get install python3-venv)" >&2
  exit 1
}
mkdir -p "$TOOLS"
stamp() { echo "$TOOLS/.stamp-$1"; }

# The package name of a pip requirement such as "cfn-lint[junit]==1.58.0".
req_name() { local n=${1%%[*}; n=${n%%==*}; echo "${n,,}"; }

# venv_install NAME REQUIREMENT...: makes .tools/NAME hold at least these
# pinned requirements. Keeps what an earlier mode installed there (so a
# `rehearsal` venv grows into the full one), replacing any pin of the same
# package, and installs the whole set in one pip run so pip resolves every
# package's dependencies together.
venv_install() {
  local venv=$1; shift
  local -A want=()
  local r
  if [ -x "$TOOLS/$venv/bin/python" ]; then
    for r in $(cat "$(stamp "$venv")" 2>/dev/null || true); do want[$(req_name "$r")]=$r; done
  fi
  local have=" ${want[*]} " missing=0
  for r in "$@"; do
    [[ "$have" == *" $r "* ]] || missing=1
    want[$(req_name "$r")]=$r
  done
  [ "$missing" = 1 ] || return 0
  local all
  all=$(printf '%s\n' "${want[@]}" | sort | tr '\n' ' ')
  echo "setup-tools: installing ${all% } into .tools/$venv"
  [ -x "$TOOLS/$venv/bin/python" ] || "$PY" -m venv "$TOOLS/$venv"
  rm -f "$(stamp "$venv")"
  # shellcheck disable=SC2086 # one word per requirement
  "$TOOLS/$venv/bin/pip" install --quiet --disable-pip-version-check $all
  echo "${all% }" > "$(stamp "$venv")"
}

# 1. Every mode: what scripts/build.sh needs for a local build. cargo-lambda
#    finds zig through the venv's python (the ziglang package), so the venv's
#    bin/ must be on PATH; PyYAML rewrites the templates.
group=("cargo-lambda==$CARGO_LAMBDA_VERSION" "ziglang==$ZIGLANG_VERSION" "PyYAML==$PYYAML_VERSION")
# 2. build: `sam package` (build.sh --s3-bucket) and cfn-lint.
[ "$MODE" = rehearsal ] || group+=("aws-sam-cli==$SAM_CLI_VERSION" "cfn-lint[junit]==$CFN_LINT_VERSION")
# 3. rehearsal and tests: moto's server, the local AWS the gate and
#    packaging tests use and the rehearsal creates a stack's tables, queues
#    and buckets in (crates/local-resources; started only for a stack that
#    has such resources). One pin for both.
[ "$MODE" = build ] || group+=("moto[server]==$MOTO_VERSION")
venv_install venv "${group[@]}"

if [ "$MODE" = rehearsal ]; then
  echo "setup-tools: rehearsal tools ready (.tools/venv/bin)"
  exit 0
fi

venv_install checkov-venv "checkov==$CHECKOV_VERSION"

# cfn-guard builds from crates.io, unoptimised (--debug): 1 min 19 s on 2
# cores against about 4 min for the release build, and it still checks the
# three templates in 0.4 s (0.08 s optimised), which the suite does a few
# dozen times.
want="cfn-guard@$CFN_GUARD_VERSION"
if [ "$(cat "$(stamp guard)" 2>/dev/null)" != "$want" ] || [ ! -x "$TOOLS/cargo/bin/cfn-guard" ]; then
  echo "setup-tools: building $want into .tools/cargo"
  cargo install --quiet --debug --locked --root "$TOOLS/cargo" cfn-guard --version "$CFN_GUARD_VERSION"
  echo "$want" > "$(stamp guard)"
fi

# Rust target for the arm64 Lambda binaries (cargo-lambda would add it itself,
# but doing it here keeps the first build's output clean).
if command -v rustup >/dev/null && ! rustup target list --installed | grep -qx aarch64-unknown-linux-gnu; then
  rustup target add aarch64-unknown-linux-gnu
fi

echo "setup-tools: $MODE tools ready (.tools/venv/bin, .tools/checkov-venv/bin, .tools/cargo/bin)"
