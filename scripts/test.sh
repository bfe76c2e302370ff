#!/usr/bin/env bash
# The whole test suite, on a fresh machine: installs redis-server,
# redis-tools and faketime (Debian packages) when missing, then checks
# formatting and lints, runs every test in the workspace against real
# redis-server processes that the testkit starts on free loopback ports, and
# checks the protocol model with spin (scripts/model-check.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages the suite needs: redis-server and redis-cli for every test
# about Redis, faketime (libfaketime) for the chaos runner's clock-jump
# schedules. scripts/model-check.sh installs spin itself.
missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v redis-cli >/dev/null 2>&1 || missing+=(redis-tools)
command -v faketime >/dev/null 2>&1 || missing+=(faketime)
if [ ${#missing[@]} -gt 0 ]; then
  echo "==> missing: installing ${missing[*]} with apt-get"
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi
echo "==> $(redis-server --version)"

start=$(date +%s)
log=$(mktemp)
trap 'rm -f "$log"' EXIT
echo "==> cargo fmt --check"
cargo fmt --all -- --check
echo "==> cargo clippy (all targets, all features, -D warnings)"
cargo clippy --workspace --all-targets --all-features --quiet -- -D warnings
echo "==> cargo doc (workspace, -D warnings)"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --all-features --no-deps --quiet
echo "==> cargo test (workspace, all features)"
cargo test --workspace --all-features 2>&1 | tee -a "$log"
echo "==> redlock-core alone, with no runtime feature"
cargo test -p redlock-core --quiet 2>&1 | tee -a "$log"
echo "==> the protocol model, checked by spin (scripts/model-check.sh)"
bash scripts/model-check.sh
echo "==> the quickstart example on the embedded default"
cargo run --quiet --example quickstart
echo "==> suite finished in $(( $(date +%s) - start )) s"
# One closing line over every cargo test summary above.
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i) ~ /^passed;?$/) p += $(i-1); if ($(i) ~ /^failed;?$/) f += $(i-1); if ($(i) ~ /^ignored;?$/) s += $(i-1) } }
     END { printf "summary: %d passed, %d failed, %d skipped\n", p, f, s }' "$log"
