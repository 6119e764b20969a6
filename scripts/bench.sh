#!/usr/bin/env bash
# Benchmarks both Lambda functions on the local stack and writes BENCHMARKS.md.
#
# Usage: scripts/bench.sh [--no-zip] [bench options, e.g. --runs 5 --backlog 10000 --agreements 1000]
#   --no-zip  skip the arm64 release build with cargo lambda (the zip size figures are then absent)
# The functions are measured as release builds (the profile deployed).
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_root"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/dmm-integration-aws/target}"

build_zip=true
args=()
for arg in "$@"; do
  case "$arg" in
    --no-zip) build_zip=false ;;
    *) args+=("$arg") ;;
  esac
done

if $build_zip; then
  scripts/setup.sh --arm64
else
  scripts/setup.sh
fi
zip_args=()
if $build_zip; then
  echo "Building the arm64 release zips with cargo lambda (takes several minutes)…"
  PATH="$repo_root/.venv/bin:$PATH" cargo lambda build --release --arm64 --output-format zip \
    --lambda-dir "$CARGO_TARGET_DIR/lambda" --bin poll_feed --bin manage_iam_policies
  zip_args=(--zip-dir "$CARGO_TARGET_DIR/lambda")
fi
cargo build --release --locked --bin poll_feed --bin manage_iam_policies --bin bench
exec "$CARGO_TARGET_DIR/release/bench" "${zip_args[@]}" "${args[@]}"
