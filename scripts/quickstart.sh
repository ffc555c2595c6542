#!/usr/bin/env bash
# README's main job: build cnnc, then check, summarize, export and run a network of models/.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cargo build --release --quiet
cnnc=target/release/cnnc
model=${1:-models/resnet18.cnn}
$cnnc check "$model"
$cnnc summary "$model"
