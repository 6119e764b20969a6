#!/usr/bin/env bash
# Installs the project-local tools the tests, the demo and the builds rely on (ADR 004): a virtualenv
# at <repo>/.venv with the pinned moto server and cargo-lambda from tools/requirements.txt.
#
# Safe to run on every checkout and in CI: it does nothing (in well under a second) when the venv
# already matches the requirements file, and rebuilds the venv from scratch when the file changed,
# so a removed or re-pinned package never lingers.
#
# Usage: scripts/setup.sh [--arm64]
#   --arm64  also add the Rust target aarch64-unknown-linux-gnu (needed to build the Lambda artifacts)
# Environment: PYTHON  interpreter used to create the venv (default: python3)
set -euo pipefail

usage() {
    sed -n 's/^# \{0,1\}//; /^Usage:/,/^Environment:.*/p' "${BASH_SOURCE[0]}"
}

die() {
    echo "setup.sh: $*" >&2
    exit 1
}

want_arm64=false
for arg in "$@"; do
    case "$arg" in
        --arm64) want_arm64=true ;;
        -h | --help)
            usage
            exit 0
            ;;
        *)
            usage >&2
            die "unknown argument: $arg"
            ;;
    esac
done

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
requirements="$repo_root/tools/requirements.txt"
venv="$repo_root/.venv"
stamp="$venv/.requirements.sha256"
python="${PYTHON:-python3}"

[[ -f "$requirements" ]] || die "missing $requirements"
command -v "$python" >/dev/null 2>&1 ||
    die "'$python' not found. Install Python 3.9 or newer with the venv module (Debian/Ubuntu: apt-get install python3 python3-venv), or point PYTHON at an interpreter, then re-run."

# Hashing with Python keeps the script free of sha256sum/shasum differences between Linux and macOS.
want_hash="$("$python" -c 'import hashlib, sys; print(hashlib.sha256(open(sys.argv[1], "rb").read()).hexdigest())' "$requirements")"

venv_is_current() {
    [[ -f "$stamp" && "$(<"$stamp")" == "$want_hash" ]] &&
        [[ -x "$venv/bin/moto_server" && -x "$venv/bin/cargo-lambda" ]] &&
        "$venv/bin/python" -c '' >/dev/null 2>&1
}

if venv_is_current; then
    echo "setup.sh: .venv is up to date with tools/requirements.txt"
else
    echo "setup.sh: creating .venv from tools/requirements.txt"
    "$python" -c 'import venv, ensurepip' >/dev/null 2>&1 ||
        die "'$python' lacks the venv/ensurepip modules (Debian/Ubuntu: apt-get install python3-venv)."
    rm -f "$stamp"
    "$python" -m venv --clear "$venv"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$requirements"
    for tool in moto_server cargo-lambda; do
        [[ -x "$venv/bin/$tool" ]] || die "$venv/bin/$tool is missing after installing $requirements"
    done
    # Written last: an interrupted install leaves no stamp, so the next run starts over.
    printf '%s\n' "$want_hash" >"$stamp"
    echo "setup.sh: .venv ready ($("$venv/bin/cargo-lambda" lambda --version))"
fi

if [[ "$want_arm64" == true ]]; then
    command -v rustup >/dev/null 2>&1 ||
        die "rustup not found; --arm64 needs it to add the aarch64-unknown-linux-gnu target."
    rustup target add aarch64-unknown-linux-gnu
fi
