#!/usr/bin/env bash
# Build, test and deploy the integration (what a CI/CD pipeline would run).
#
#   ./cicd.sh <version>             build both functions, run the tests, upload the artifacts,
#                                   terraform init + apply with <version>
#   ./cicd.sh --dry-run <version>   everything that does not talk to AWS: build, tests,
#                                   terraform fmt -check and validate (when terraform is installed)
#   ./cicd.sh --plan <version>      terraform init + plan for <version> (no build, no tests); exits 0
#                                   when nothing would change, 2 when something would
#   ./cicd.sh --destroy             terraform init + destroy
#   ./cicd.sh --help
#
# Configuration: terraform/terraform.tfvars (copy terraform.tfvars.example). Credentials come from
# the standard AWS chain (AWS_PROFILE, `aws sso login`, environment, instance role), never from
# variables. Environment:
#   ARTIFACTS_BUCKET  existing S3 bucket to upload the zips to, as
#                     s3://$ARTIFACTS_BUCKET/<function>/src/<version>/lambda.zip (the Python
#                     reference's layout; needs the AWS CLI). Unset: Terraform uploads the local
#                     zips with the functions.
#   LAMBDA_DIR        where the zips are built to and taken from (default: target/lambda)
#   SKIP_BUILD=1      use the zips already in LAMBDA_DIR (built by an earlier pipeline stage)
#   TERRAFORM_DIR     the Terraform configuration to apply (default: terraform/)
#   LAMBDA_ARCH       arm64 (default) or x86_64
#   TEST_CMD          the test command (default: scripts/test.sh, the README's test command:
#                     fmt, clippy, every test, the Terraform checks)
#   SKIP_TESTS=1      do not run it
#   TF_VAR_FILE       an additional -var-file for terraform
#   AUTO_APPROVE=1    apply / destroy without the interactive confirmation (CI)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
TF_DIR="${TERRAFORM_DIR:-$ROOT/terraform}"
LAMBDA_DIR="${LAMBDA_DIR:-$ROOT/target/lambda}"
FUNCTIONS=(poll_feed manage_iam_policies)
LAMBDA_ARCH="${LAMBDA_ARCH:-arm64}"
ARTIFACTS_BUCKET="${ARTIFACTS_BUCKET:-}"
AUTO_APPROVE="${AUTO_APPROVE:-0}"
SKIP_TESTS="${SKIP_TESTS:-0}"
SKIP_BUILD="${SKIP_BUILD:-0}"
TF_VAR_FILE="${TF_VAR_FILE:-}"
# A TF_CLI_CONFIG_FILE pointing at nothing only produces a warning on every terraform call.
if [[ -n "${TF_CLI_CONFIG_FILE:-}" && ! -f "$TF_CLI_CONFIG_FILE" ]]; then
  unset TF_CLI_CONFIG_FILE
fi

usage() {
  sed -n '2,/^set -euo pipefail$/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'
}

step() { printf '\n==> %s\n' "$*"; }
die() {
  printf 'error: %s\n' "$*" >&2
  exit 1
}

# A missing tool stops the run with what to install.
require() {
  local tool="$1" hint="$2"
  command -v "$tool" >/dev/null 2>&1 || die "'$tool' is required but not installed. $hint"
}

require_aws() {
  require aws "Install the AWS CLI v2: https://docs.aws.amazon.com/cli/latest/userguide/getting-started-install.html"
  local identity
  if ! identity="$(aws sts get-caller-identity --query Arn --output text 2>&1)"; then
    printf '%s\n' "$identity" >&2
    die "no usable AWS credentials. Configure them the standard way (AWS_PROFILE + 'aws sso login', AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, or an instance role); they never go into terraform variables."
  fi
  echo "AWS identity: $identity"
}

# The AWS CLI is needed to upload to ARTIFACTS_BUCKET; without a bucket, Terraform checks the
# credentials itself (and the CLI, when installed, checks them early with a clearer message).
check_credentials() {
  if [[ -n "$ARTIFACTS_BUCKET" ]] || command -v aws >/dev/null 2>&1; then
    require_aws
  fi
}

require_terraform() {
  require terraform "Install Terraform >= 1.5: https://developer.hashicorp.com/terraform/install"
}

check_version() {
  [[ "$1" =~ ^[A-Za-z0-9._+-]{1,64}$ ]] || die "version '$1' must be 1-64 characters of letters, digits, '.', '_', '+' or '-'"
}

arch_flag() {
  case "$LAMBDA_ARCH" in
    arm64) echo "--arm64" ;;
    x86_64) echo "--x86-64" ;;
    *) die "LAMBDA_ARCH must be arm64 or x86_64, not '$LAMBDA_ARCH'" ;;
  esac
}

build() {
  if [[ "$SKIP_BUILD" == 1 ]]; then
    step "Build SKIPPED (SKIP_BUILD=1): using the zips in $LAMBDA_DIR"
    check_zips
    return 0
  fi
  step "Building ${FUNCTIONS[*]} ($LAMBDA_ARCH, release, zip)"
  require cargo "Install Rust: https://rustup.rs"
  # cargo-lambda may live in the project's virtualenv (tools/requirements.txt).
  if ! command -v cargo-lambda >/dev/null 2>&1 && [[ -x "$ROOT/.venv/bin/cargo-lambda" ]]; then
    PATH="$ROOT/.venv/bin:$PATH"
  fi
  require cargo-lambda "Install it with 'pip install cargo-lambda' (pinned in tools/requirements.txt) or see https://www.cargo-lambda.info"
  local packages=()
  for f in "${FUNCTIONS[@]}"; do packages+=(--package "$f"); done
  (cd "$ROOT" && cargo lambda build --release "$(arch_flag)" --output-format zip \
    --lambda-dir "$LAMBDA_DIR" "${packages[@]}")
  check_zips
}

check_zips() {
  for f in "${FUNCTIONS[@]}"; do
    [[ -s "$LAMBDA_DIR/$f/bootstrap.zip" ]] || die "no $LAMBDA_DIR/$f/bootstrap.zip"
    echo "artifact: $LAMBDA_DIR/$f/bootstrap.zip ($(du -h "$LAMBDA_DIR/$f/bootstrap.zip" | cut -f1))"
  done
}

run_tests() {
  if [[ "$SKIP_TESTS" == 1 ]]; then
    step "Tests SKIPPED (SKIP_TESTS=1)"
    return 0
  fi
  local cmd="${TEST_CMD:-scripts/test.sh}"
  step "Tests: $cmd"
  (cd "$ROOT" && bash -c "$cmd") || die "tests failed; nothing was deployed"
}

# terraform -var arguments shared by apply and destroy.
tf_vars() {
  local version="$1"
  TF_ARGS=(
    -var "versions={poll_feed=\"$version\",manage_iam_policies=\"$version\"}"
    -var "lambda_architecture=$LAMBDA_ARCH"
  )
  if [[ -n "$ARTIFACTS_BUCKET" ]]; then
    TF_ARGS+=(-var "artifacts_bucket_name=$ARTIFACTS_BUCKET")
  else
    TF_ARGS+=(-var "artifacts_dir=$LAMBDA_DIR")
  fi
  if [[ -n "$TF_VAR_FILE" ]]; then
    [[ -f "$TF_VAR_FILE" ]] || die "TF_VAR_FILE '$TF_VAR_FILE' does not exist"
    TF_ARGS+=(-var-file "$TF_VAR_FILE")
  fi
  if [[ "$AUTO_APPROVE" == 1 ]]; then
    TF_ARGS+=(-auto-approve)
  fi
}

upload() {
  local version="$1"
  if [[ -z "$ARTIFACTS_BUCKET" ]]; then
    step "No ARTIFACTS_BUCKET: terraform uploads the zips from $LAMBDA_DIR with the functions"
    return 0
  fi
  step "Uploading artifacts to s3://$ARTIFACTS_BUCKET"
  aws s3api head-bucket --bucket "$ARTIFACTS_BUCKET" >/dev/null 2>&1 ||
    die "artifacts bucket '$ARTIFACTS_BUCKET' does not exist or is not accessible; create it first (it must be in the deployment region) or unset ARTIFACTS_BUCKET"
  for f in "${FUNCTIONS[@]}"; do
    aws s3 cp --only-show-errors "$LAMBDA_DIR/$f/bootstrap.zip" "s3://$ARTIFACTS_BUCKET/$f/src/$version/lambda.zip"
    echo "uploaded s3://$ARTIFACTS_BUCKET/$f/src/$version/lambda.zip"
  done
}

# fmt and validate without a backend and without AWS. validate needs the hashicorp/aws provider;
# when `terraform init` cannot download it, validate is skipped loudly (never silently).
terraform_static_checks() {
  if ! command -v terraform >/dev/null 2>&1; then
    printf '\n!!! SKIPPED terraform fmt/validate: terraform is not installed\n\n' >&2
    return 0
  fi
  step "terraform fmt -check"
  terraform -chdir="$TF_DIR" fmt -check -recursive -diff || die "terraform files are not formatted: run 'terraform -chdir=terraform fmt -recursive'"
  step "terraform validate (no backend)"
  local work
  work="$(mktemp -d)"
  cp -r "$TF_DIR" "$work/terraform"
  rm -rf "$work/terraform/.terraform"
  if terraform -chdir="$work/terraform" init -backend=false -input=false -no-color >"$work/init.log" 2>&1; then
    terraform -chdir="$work/terraform" validate || die "terraform validate failed"
  else
    cat "$work/init.log" >&2
    printf '\n!!! SKIPPED terraform validate: terraform init failed (above), most likely the provider could not be downloaded\n\n' >&2
  fi
  rm -rf "$work"
}

deploy() {
  local version="$1" dry_run="$2"
  check_version "$version"
  arch_flag >/dev/null
  if [[ "$dry_run" == 0 ]]; then
    # Fail before the long build when the deployment could not happen anyway.
    require_terraform
    check_credentials
  fi
  build
  run_tests
  tf_vars "$version"
  if [[ "$dry_run" == 1 ]]; then
    terraform_static_checks
    step "Dry run: no AWS call was made. A deployment would run:"
    if [[ -n "$ARTIFACTS_BUCKET" ]]; then
      for f in "${FUNCTIONS[@]}"; do
        echo "  aws s3 cp $LAMBDA_DIR/$f/bootstrap.zip s3://$ARTIFACTS_BUCKET/$f/src/$version/lambda.zip"
      done
    fi
    echo "  terraform -chdir=$TF_DIR init -input=false"
    printf '  terraform -chdir=%s apply' "$TF_DIR"
    printf ' %q' "${TF_ARGS[@]}"
    printf '\n'
    return 0
  fi
  upload "$version"
  step "terraform init"
  terraform -chdir="$TF_DIR" init -input=false
  step "terraform apply (version $version)"
  terraform -chdir="$TF_DIR" apply -input="$([[ "$AUTO_APPROVE" == 1 ]] && echo false || echo true)" "${TF_ARGS[@]}"
  terraform -chdir="$TF_DIR" output
}

# Terraform plan for <version>: what an apply would change. Exit status 0: nothing; 2: changes.
plan() {
  local version="$1" status
  check_version "$version"
  require_terraform
  check_credentials
  AUTO_APPROVE=0 tf_vars "$version"
  step "terraform init"
  terraform -chdir="$TF_DIR" init -input=false
  step "terraform plan (version $version)"
  status=0
  terraform -chdir="$TF_DIR" plan -input=false -detailed-exitcode "${TF_ARGS[@]}" || status=$?
  return "$status"
}

destroy() {
  require_terraform
  check_credentials
  # The version is irrelevant for destroying; the variable only has to be set.
  tf_vars "destroy"
  step "terraform init"
  terraform -chdir="$TF_DIR" init -input=false
  step "terraform destroy"
  terraform -chdir="$TF_DIR" destroy -input="$([[ "$AUTO_APPROVE" == 1 ]] && echo false || echo true)" "${TF_ARGS[@]}"
}

main() {
  case "${1:-}" in
    -h | --help)
      usage
      ;;
    --dry-run)
      [[ $# -eq 2 ]] || die "usage: ./cicd.sh --dry-run <version>"
      deploy "$2" 1
      ;;
    --plan)
      [[ $# -eq 2 ]] || die "usage: ./cicd.sh --plan <version>"
      plan "$2"
      ;;
    --destroy)
      [[ $# -eq 1 ]] || die "usage: ./cicd.sh --destroy"
      destroy
      ;;
    "" | -*)
      usage >&2
      exit 2
      ;;
    *)
      [[ $# -eq 1 ]] || die "usage: ./cicd.sh <version>"
      deploy "$1" 0
      ;;
  esac
}

main "$@"
