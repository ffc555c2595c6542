#!/usr/bin/env bash
# Prepares .gpu/: everything a lent GPU machine (the workplace's `device` tool) needs to run
# cnnc's CUDA checks, in pieces small enough to travel one per call.
#
# That machine has no Rust, no onnxruntime-gpu and no network, and one call carries at most
# 64 MiB, while the CUDA build of ONNX Runtime alone is 185 MB compressed. So this script
# builds the release binary and the test binaries that exercise CUDA here, adds the
# onnxruntime-gpu libraries and Fashion-MNIST, packs it all as one xz stream and splits it
# into .gpu/1/, .gpu/2/, …, and prints the calls to make: each call carries one piece into
# /tmp/cnnc-gpu on the (still warm) machine; the last one unpacks and runs
# scripts/gpu_check.sh, which writes its logs to $OUT.
set -euo pipefail
cd "$(dirname "$0")/.."

ORT_GPU_VERSION="${ORT_GPU_VERSION:-1.31.1}"
PIECE_MIB="${PIECE_MIB:-58}"
CACHE=target/gpu-cache
STAGE=target/gpu-stage
TESTS=(train_stateful runtime_api runtime_cli train_loop)

mkdir -p "$CACHE"
wheel=$(ls "$CACHE"/onnxruntime_gpu-"$ORT_GPU_VERSION"-*.whl 2>/dev/null | head -1 || true)
if [ -z "$wheel" ]; then
    echo "downloading onnxruntime-gpu $ORT_GPU_VERSION (about 256 MB)"
    python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
        --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
        --platform manylinux_2_17_x86_64 -d "$CACHE" "onnxruntime-gpu==$ORT_GPU_VERSION"
    wheel=$(ls "$CACHE"/onnxruntime_gpu-"$ORT_GPU_VERSION"-*.whl | head -1)
fi

echo "building cnnc and the CUDA test binaries (release)"
cargo build --release --quiet
test_args=()
for t in "${TESTS[@]}"; do test_args+=(--test "$t"); done
executables=$(cargo test --release --no-run --message-format=json "${test_args[@]}" 2>/dev/null |
    python3 -c '
import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["kind"] == ["test"]:
        print(m["target"]["name"], m["executable"])
')

rm -rf "$STAGE" .gpu
mkdir -p "$STAGE"/ort "$STAGE"/tests "$STAGE"/fashion-mnist "$STAGE"/target/release
unzip -q -j -o "$wheel" 'onnxruntime/capi/libonnxruntime.so.*' \
    'onnxruntime/capi/libonnxruntime_providers_shared.so' \
    'onnxruntime/capi/libonnxruntime_providers_cuda.so' -d "$STAGE"/ort
strip -o "$STAGE"/target/release/cnnc target/release/cnnc
while read -r name path; do
    strip -o "$STAGE/tests/$name" "$path"
done <<<"$executables"
data=/usr/share/datasets/fashion-mnist
if [ ! -f "$data/train-images-idx3-ubyte.gz" ]; then
    echo "Fashion-MNIST is missing: apt-get update && apt-get install dataset-fashion-mnist" >&2
    exit 2
fi
cp "$data"/*.gz "$STAGE"/fashion-mnist/

echo "packing (xz, a few minutes on 2 cores)"
mkdir -p .gpu
tar -C "$STAGE" -cf - . | xz -T0 -6 | split -b "${PIECE_MIB}M" -d -a 2 - .gpu/piece.
n=0
for piece in .gpu/piece.*; do
    n=$((n + 1))
    mkdir -p ".gpu/$n"
    mv "$piece" ".gpu/$n/piece"
done
cat <<EOF
.gpu/ holds $n pieces ($(du -sh .gpu | cut -f1)). With the device tool, make these calls one
right after another (the machine stays warm only about 30 s between calls):
EOF
for i in $(seq 1 "$n"); do
    cmd="mkdir -p /tmp/cnnc-gpu && cp .gpu/$i/piece /tmp/cnnc-gpu/piece.$(printf %02d "$i")"
    if [ "$i" = "$n" ]; then cmd="$cmd && bash scripts/gpu_check.sh"; fi
    echo "  run(carry=[\".gpu/$i\"], command=\"$cmd\")"
done
