#!/usr/bin/env bash
# The one-command local demo: installs the local tools if needed, builds both Lambda binaries and
# runs the whole flow on this machine (moto as AWS, the DMM simulator, the Lambda Runtime API).
#
# Usage: scripts/demo.sh [--scenario FILE] [--agreement ID]
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_root"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/dmm-integration-aws/target}"

scripts/setup.sh
echo "Building the Lambda binaries and the demo (the first build takes a few minutes)…"
cargo build --locked --quiet --bin poll_feed --bin manage_iam_policies --bin demo
exec "$CARGO_TARGET_DIR/debug/demo" "$@"
