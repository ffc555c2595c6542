#!/usr/bin/env bash
# README's main job: build cnnc, then check, summarize, export, run and benchmark a network
# of models/ (ResNet-18 by default) on the CPU through ONNX Runtime.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# CNNC_BIN runs an already built binary (the end-to-end test of this script uses it).
if [ -n "${CNNC_BIN:-}" ]; then
    cnnc=$CNNC_BIN
else
    cargo build --release --quiet
    cnnc=target/release/cnnc
fi
model=${1:-models/resnet18.cnn}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
name=$(basename "$model" .cnn)

$cnnc check "$model"
$cnnc summary "$model"
$cnnc export "$model" -o "$out/$name.onnx"
python3 -c "
import numpy as np, sys
shape = [int(d) for d in sys.argv[1].strip('[]').split(',')]
np.save(sys.argv[2], np.random.default_rng(0).random([2] + shape, dtype=np.float32))
" "$($cnnc summary "$model" --format json | python3 -c 'import json,sys; print(json.load(sys.stdin)["input"])')" "$out/x.npy"
$cnnc run "$out/$name.onnx" --input "$out/x.npy" --output "$out/y.npy"
$cnnc bench "$out/$name.onnx" --batch 1 --iterations 50
$cnnc doctor
