#!/usr/bin/env bash
# Runs every test of the project: formatting and lints, the unit tests, the integration tests
# against the local stack (moto server as AWS, the DMM simulator, both Lambda binaries through the
# Lambda Runtime API), a real deployment of terraform/ with cicd.sh against moto, and the static
# checks of terraform/.
#
# Usage: scripts/test.sh
# Environment:
#   CARGO_TARGET_DIR  where cargo builds; defaults to a cache outside the clone
#                     (~/.cache/dmm-integration-aws/target) so a second run, or CI on the same
#                     machine, does not rebuild the AWS SDK from scratch.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_root"

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/dmm-integration-aws/target}"
mkdir -p "$CARGO_TARGET_DIR"
# The harness finds moto's virtualenv here, whichever checkout last built the shared target dir.
export DMM_AWS_REPO_ROOT="$repo_root"

step() { printf '\n==> %s\n' "$*"; }

step "local tools (moto server, cargo-lambda)"
scripts/setup.sh

step "formatting"
cargo fmt --all -- --check

step "lints"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "build the Lambda binaries the integration tests run"
cargo build --workspace --bins --locked

# A local copy of the hashicorp/aws provider (no registry access here) lets the deployment test
# apply terraform/ against moto, and `terraform validate` and the offline `terraform test` suites
# run. Without one the deployment test fails and the static checks are skipped loudly.
if [[ -z "${TF_PROVIDER_MIRROR:-}" && -d /opt/tf-plugins ]]; then
  export TF_PROVIDER_MIRROR=/opt/tf-plugins
fi

step "unit and integration tests (the deployment test applies terraform/ against moto)"
cargo test --workspace --locked

step "terraform static checks"
scripts/check-terraform.sh
