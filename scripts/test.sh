#!/usr/bin/env bash
# The test command of README.md (and of CI): installs what the tests need, then runs
# formatting, lints and every test.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cargo fmt --check
cargo clippy --all-targets --quiet -- -D warnings
INSTA_UPDATE=no cargo test
