#!/usr/bin/env bash
# The one build of this repository: buildspec.yml (CodeBuild) and the local
# rehearsal both run it, so what is rehearsed is what ships.
#
#   scripts/build.sh --arch <arm64|x86_64> --out DIR [--profile NAME]
#                    [--s3-bucket BUCKET [--s3-prefix PREFIX] [--kms-key-id KEY]]
#
# 1. Finds every function of $APP_DIR/app-sam.yaml, $APP_DIR/test-sam.yaml
#    and pipeline.yaml (AWS::Serverless::Function with Metadata BuildMethod
#    rust-cargolambda and BuildProperties Binary; a CodeUri is relative to
#    its template). APP_DIR is the directory of the repository holding the
#    app's two templates (default ".", the root; the pipeline's AppDirectory
#    parameter, which CodeBuild passes as APP_DIR; examples/orders is the
#    example app).
# 2. Builds each binary for ARCH with `cargo lambda build` (cross-compiling
#    and linking with zig), one binary per invocation (see below), in cargo
#    profile NAME (default release, what ships; the rehearsal passes
#    `--profile rehearsal`, see Cargo.toml), into
#    $CARGO_TARGET_DIR/lambda-NAME-ARCH (default target dir: the repository's
#    target/, shared with every other build). One directory per profile and
#    architecture, so two builds running at the same time cannot swap
#    binaries; each bootstrap's ELF machine is checked anyway.
# 3. Copies each binary to DIR/functions/<binary>/bootstrap and writes
#    DIR/packaged-{app,test,pipeline}.yaml with each function's CodeUri set to
#    functions/<binary> (relative to DIR) and Architectures set to [ARCH].
#    The templates say arm64; --arch x86_64 exists for rehearsing on an
#    x86_64 machine, where the functions then run natively.
# 4. With --s3-bucket, those local templates are kept as DIR/local-*.yaml
#    and `sam package` uploads the function zips to s3://BUCKET/PREFIX
#    (encrypted with KMS key KEY when --kms-key-id is given), writing
#    DIR/packaged-*.yaml with S3 CodeUris (what CodePipeline deploys).
#
# We build with cargo-lambda directly rather than `sam build`: the
# architecture is a flag instead of a rewritten copy of each template, and
# the per-architecture output directory avoids the race above. `sam build`
# still works on each template (the Metadata above is what it reads).
#
# Tools come from .tools/ (scripts/setup-tools.sh): cargo-lambda, zig and
# PyYAML from .tools/venv (`scripts/setup-tools.sh rehearsal` is enough for a
# local build); `sam` only with --s3-bucket (`scripts/setup-tools.sh build`).
set -euo pipefail

usage() {
  echo "usage: $0 --arch <arm64|x86_64> --out DIR [--profile NAME] [--s3-bucket BUCKET [--s3-prefix PREFIX] [--kms-key-id KEY]]" >&2
  exit 2
}

ARCH="" OUT="" PROFILE=release BUCKET="" PREFIX="" KMS_KEY=""
while [ $# -gt 0 ]; do
  case "$1" in
    --arch) ARCH=${2:-}; shift 2 || usage ;;
    --out) OUT=${2:-}; shift 2 || usage ;;
    --profile) PROFILE=${2:-}; shift 2 || usage ;;
    --s3-bucket) BUCKET=${2:-}; shift 2 || usage ;;
    --s3-prefix) PREFIX=${2:-}; shift 2 || usage ;;
    --kms-key-id) KMS_KEY=${2:-}; shift 2 || usage ;;
    -h|--help) usage ;;
    *) echo "build.sh: unknown argument $1" >&2; usage ;;
  esac
done
case "$ARCH" in
  arm64) CARGO_LAMBDA_ARCH=--arm64 ;;
  x86_64) CARGO_LAMBDA_ARCH=--x86-64 ;;
  *) usage ;;
esac
[ -n "$OUT" ] || usage
[[ "$PROFILE" =~ ^[A-Za-z0-9_-]+$ ]] || { echo "build.sh: --profile '$PROFILE' is not a cargo profile name" >&2; exit 2; }
[ -z "$PREFIX" ] || [ -n "$BUCKET" ] || { echo "build.sh: --s3-prefix needs --s3-bucket" >&2; exit 2; }
[ -z "$KMS_KEY" ] || [ -n "$BUCKET" ] || { echo "build.sh: --kms-key-id needs --s3-bucket" >&2; exit 2; }

ROOT=$(cd "$(dirname "$0")/.." && pwd)
APP_DIR=${APP_DIR:-.}
# The same pattern as pipeline.yaml's AppDirectory: inside the repository.
[[ "$APP_DIR" =~ ^(\.|[A-Za-z0-9_][A-Za-z0-9_.-]*(/[A-Za-z0-9_][A-Za-z0-9_.-]*)*)$ ]] && [[ "/$APP_DIR/" != */../* ]] || {
  echo "build.sh: APP_DIR '$APP_DIR' is not a directory inside the repository (such as examples/orders)" >&2; exit 2; }
[ -d "$ROOT/$APP_DIR" ] || { echo "build.sh: APP_DIR '$APP_DIR' does not exist in the repository" >&2; exit 1; }
TOOLS=$ROOT/.tools
[ -x "$TOOLS/venv/bin/cargo-lambda" ] && "$TOOLS/venv/bin/python" -c 'import yaml' 2>/dev/null || {
  echo "build.sh: cargo-lambda or PyYAML missing from .tools/venv: run scripts/setup-tools.sh rehearsal (local builds) or scripts/setup-tools.sh build" >&2
  exit 1
}
if [ -n "$BUCKET" ] && [ ! -x "$TOOLS/venv/bin/sam" ]; then
  echo "build.sh: --s3-bucket needs the SAM CLI in .tools/venv: run scripts/setup-tools.sh build" >&2
  exit 1
fi
export PATH="$TOOLS/venv/bin:$PATH"
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
PY=$TOOLS/venv/bin/python

mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
LAMBDA_DIR=$CARGO_TARGET_DIR/lambda-$PROFILE-$ARCH
KINDS=(app test pipeline)
declare -A TEMPLATE=([app]=$APP_DIR/app-sam.yaml [test]=$APP_DIR/test-sam.yaml [pipeline]=pipeline.yaml)

# Template work in Python with PyYAML. The loader turns CloudFormation's
# short-form tags (!Ref, !Sub, !GetAtt a.b, ...) into their long form
# ({"Ref": ...}, {"Fn::Sub": ...}, {"Fn::GetAtt": [a, b]}), which is how they
# are written back, as SAM CLI's own YAML helper does; dates stay strings.
templates() {
  "$PY" - "$@" <<'PY'
import os, sys
import yaml

class Loader(yaml.SafeLoader):
    pass

def intrinsic(loader, suffix, node):
    tag = node.tag[1:]
    name = tag if tag in ("Ref", "Condition") else "Fn::" + tag
    if tag == "GetAtt" and isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node).split(".", 1)
    elif isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    return {name: value}

Loader.add_multi_constructor("!", intrinsic)
Loader.add_constructor("tag:yaml.org,2002:timestamp", Loader.construct_yaml_str)

class Dumper(yaml.SafeDumper):
    def ignore_aliases(self, data):
        return True

def quote_leading_zero(dumper, value):
    # An account id such as 0123... must stay a string.
    style = "'" if value.startswith("0") else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)

Dumper.add_representer(str, quote_leading_zero)

def load(path):
    with open(path) as f:
        return yaml.load(f, Loader=Loader)

def functions(template):
    for logical_id, res in (template.get("Resources") or {}).items():
        if res.get("Type") != "AWS::Serverless::Function":
            continue
        meta = res.get("Metadata") or {}
        binary = (meta.get("BuildProperties") or {}).get("Binary")
        if meta.get("BuildMethod") != "rust-cargolambda" or not binary:
            sys.exit(f"build.sh: function {logical_id} has no Metadata BuildMethod "
                     "rust-cargolambda with BuildProperties Binary")
        yield res, binary

command, *args = sys.argv[1:]
if command == "binaries":          # binaries TEMPLATE... -> "binary<TAB>package dir" lines
    names = {}
    for path in args:
        for res, b in functions(load(path)):
            code_uri = (res.get("Properties") or {}).get("CodeUri")
            if not isinstance(code_uri, str) or not os.path.isfile(
                    os.path.join(os.path.dirname(path), code_uri, "Cargo.toml")):
                sys.exit(f"build.sh: function with binary {b} in {path}: CodeUri "
                         f"{code_uri!r} must be the directory of the package that has it")
            # The package's directory, absolute: a CodeUri is relative to
            # its template, which may be in APP_DIR.
            names[b] = os.path.normpath(os.path.join(
                os.path.dirname(os.path.abspath(path)), code_uri))
    print("\n".join(f"{b}\t{d}" for b, d in sorted(names.items())))
elif command == "write":           # write SRC DEST ARCH
    src, dest, arch = args
    template = load(src)
    for res, binary in functions(template):
        props = res.setdefault("Properties", {})
        props["CodeUri"] = f"functions/{binary}"
        props["Architectures"] = [arch]
    with open(dest, "w") as f:
        yaml.dump(template, f, Dumper=Dumper, default_flow_style=False,
                  sort_keys=False, width=1000)
elif command == "elf-machine":     # elf-machine FILE -> arm64 | x86_64 | other
    with open(args[0], "rb") as f:
        head = f.read(20)
    machine = int.from_bytes(head[18:20], "little") if head[:4] == b"\x7fELF" else None
    print({183: "arm64", 62: "x86_64"}.get(machine, f"other({machine})"))
PY
}

for kind in "${KINDS[@]}"; do
  [ -f "$ROOT/${TEMPLATE[$kind]}" ] || { echo "build.sh: ${TEMPLATE[$kind]} is missing" >&2; exit 1; }
done

binaries=$(templates binaries "$ROOT/${TEMPLATE[app]}" "$ROOT/${TEMPLATE[test]}" "$ROOT/pipeline.yaml")
BINARIES=()
declare -A PACKAGE_DIR=()
while IFS=$'\t' read -r b dir; do
  [ -n "$b" ] || continue
  BINARIES+=("$b")
  PACKAGE_DIR[$b]=$dir
done <<< "$binaries"
[ ${#BINARIES[@]} -gt 0 ] || { echo "build.sh: no functions found" >&2; exit 1; }

echo "build.sh: building ${BINARIES[*]} for $ARCH (profile $PROFILE; app templates in $APP_DIR)"
start=$SECONDS
# A committed Cargo.lock is what the build uses, never a fresh resolution.
lock_args=()
[ ! -f "$ROOT/Cargo.lock" ] || lock_args+=(--locked)
# --release for the release profile, as before: cargo-lambda treats the flag
# and `--profile release` alike, but the flag is what `sam build` passes.
if [ "$PROFILE" = release ]; then profile_args=(--release); else profile_args=(--profile "$PROFILE"); fi
# One cargo invocation per binary, run in its package's directory (the
# template's CodeUri), exactly as `sam build` does. Cargo unifies the features
# of every package it selects, and from the workspace root it selects them
# all, even with --bin: time-service would then link the gate functions'
# regex-based log filter and more (4.4 MB instead of 3.9 MB). Built from its
# own package, each function carries only its own features, and its
# artifacts are the ones `sam build` reuses.
n=0
for b in "${BINARIES[@]}"; do
  n=$((n + 1))
  echo "build.sh: building function $b ($n of ${#BINARIES[@]})"
  (cd "${PACKAGE_DIR[$b]}" && cargo lambda build "${profile_args[@]}" "$CARGO_LAMBDA_ARCH" \
    --lambda-dir "$LAMBDA_DIR" "${lock_args[@]}" --bin "$b")
done
echo "build.sh: compiled in $((SECONDS - start)) s"

rm -rf "$OUT/functions"
for b in "${BINARIES[@]}"; do
  src=$LAMBDA_DIR/$b/bootstrap
  machine=$(templates elf-machine "$src")
  [ "$machine" = "$ARCH" ] || { echo "build.sh: $src is $machine, not $ARCH" >&2; exit 1; }
  mkdir -p "$OUT/functions/$b"
  cp "$src" "$OUT/functions/$b/bootstrap"
  echo "build.sh: functions/$b/bootstrap ($ARCH, $(stat -c %s "$src") bytes)"
done

for kind in "${KINDS[@]}"; do
  src=$ROOT/${TEMPLATE[$kind]}
  if [ -z "$BUCKET" ]; then
    templates write "$src" "$OUT/packaged-$kind.yaml" "$ARCH"
  else
    templates write "$src" "$OUT/local-$kind.yaml" "$ARCH"
    # --force-upload re-uploads unchanged zips too, so their age in the bucket
    # (whose lifecycle expires old objects) starts again with every build.
    package_args=()
    [ -z "$PREFIX" ] || package_args+=(--s3-prefix "$PREFIX")
    [ -z "$KMS_KEY" ] || package_args+=(--kms-key-id "$KMS_KEY")
    sam package --template-file "$OUT/local-$kind.yaml" \
      --s3-bucket "$BUCKET" "${package_args[@]}" \
      --force-upload --no-progressbar \
      --output-template-file "$OUT/packaged-$kind.yaml"
  fi
  echo "build.sh: wrote $OUT/packaged-$kind.yaml"
done
