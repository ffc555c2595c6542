#!/usr/bin/env bash
# Runs on a lent GPU machine, in the repository's root, after the pieces that
# scripts/gpu_bundle.sh made were carried into /tmp/cnnc-gpu (see that script): unpacks them,
# points cnnc at the CUDA build of ONNX Runtime and the CUDA libraries of the machine's
# PyTorch, then runs the steps named (all of them when none is):
#   tests      the CUDA tests (CNNC_REQUIRE_CUDA=1: a CUDA test that would skip fails instead)
#   runs       bench and train on the CPU, then on CUDA, with the same seed
#   placement  where ONNX Runtime places every node of the training step of each trainable
#              model family (its verbose log)
#   perf       training throughput against PyTorch eager on the GPU
#              (benches/reference/pytorch_train.py, with the machine's torch), with --timings
# Everything it prints also goes to $OUT/gpu.log.
set -uo pipefail
steps=" ${*:-tests runs placement perf} "
want() { [[ "$steps" == *" $1 "* ]]; }
OUT="${OUT:-/tmp/cnnc-gpu/out}"
mkdir -p "$OUT"
exec > >(tee "$OUT/gpu.log") 2>&1

root=$PWD
work=/tmp/cnnc-gpu
x=$work/x
if [ ! -d "$x" ]; then
    mkdir -p "$x"
    if command -v xz >/dev/null; then
        cat "$work"/piece.* | xz -d | tar -x -C "$x" || exit 1
    else
        cat "$work"/piece.* | python3 -c 'import lzma, sys, shutil; shutil.copyfileobj(lzma.open(sys.stdin.buffer), sys.stdout.buffer)' | tar -x -C "$x" || exit 1
    fi
fi

# The test binaries were built in /work/main: the cnnc they start and the files they read are
# found under that path.
mkdir -p target/release
cp "$x"/target/release/cnnc target/release/cnnc.new && mv target/release/cnnc.new target/release/cnnc
if [ ! -e /work/main ]; then
    mkdir -p /work && ln -s "$root" /work/main
fi
mkdir -p /work/main/target/release
[ -e /work/main/target/release/cnnc ] || cp "$x"/target/release/cnnc /work/main/target/release/cnnc
if [ ! -e /usr/share/datasets/fashion-mnist ]; then
    mkdir -p /usr/share/datasets && ln -s "$x"/fashion-mnist /usr/share/datasets/fashion-mnist
fi

# The libraries in a site-packages layout, beside the CUDA libraries of the machine's PyTorch
# (its `nvidia` folder), as `pip install onnxruntime-gpu[cuda,cudnn]` would leave them: cnnc
# then loads those itself (runtime::cuda_libs), with no LD_LIBRARY_PATH.
site=$x/site
mkdir -p "$site/onnxruntime/capi"
cp -n "$x"/ort/* "$site/onnxruntime/capi/"
nvidia=$(python3 -c 'import nvidia; print(list(nvidia.__path__)[0])' 2>/dev/null)
[ -n "$nvidia" ] && [ ! -e "$site/nvidia" ] && ln -s "$nvidia" "$site/nvidia"
export ORT_DYLIB_PATH
ORT_DYLIB_PATH=$(ls "$site"/onnxruntime/capi/libonnxruntime.so.* | head -1)
cnnc=target/release/cnnc

step() { echo; echo "=== $*"; }

cuda_ok() { $cnnc doctor --format json | grep -q '"cuda":{"error":null,"ok":true}'; }

step "machine"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
# The bundled ONNX Runtime is a CUDA 13 build (driver 580 or newer): the libraries it needs
# must be CUDA 13's, from the machine's PyTorch.
python3 -c 'import torch; print("torch", torch.__version__, "CUDA", torch.version.cuda)' 2>&1
[ -n "$nvidia" ] && ls "$nvidia"/*/lib 2>/dev/null | grep -E '^lib(cudart|cublas|cudnn)\.so' | sort -u
step "cnnc doctor (CUDA libraries found by cnnc beside the package)"
$cnnc doctor
if ! cuda_ok; then
    echo "CUDA did not start with the libraries cnnc found; trying them on LD_LIBRARY_PATH"
    if [ -n "$nvidia" ]; then
        LD_LIBRARY_PATH="$(ls -d "$nvidia"/*/lib | paste -sd:)${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
        export LD_LIBRARY_PATH
    fi
    $cnnc doctor
    if ! cuda_ok; then
        echo "FAILED: the CUDA execution provider does not start on this machine (see doctor above)"
        exit 1
    fi
fi
# From here on CUDA works: a CUDA test that would skip fails instead.
export CNNC_REQUIRE_CUDA=1
failed=0
if want tests; then
step "CUDA tests"
for t in "$x"/tests/*; do
    echo "--- $(basename "$t")"
    "$t" --test-threads 1 >"$OUT/$(basename "$t").log" 2>&1 || failed=1
    grep -E "test result|FAILED|panicked|skipped|CUDA|cuda" "$OUT/$(basename "$t").log"
done
"$x"/tests/train_stateful stateful_cuda --nocapture --test-threads 1 || failed=1
fi

if want runs; then

step "bench: ResNet-18, batch 32, CPU then CUDA"
$cnnc bench models/resnet18.cnn --batch 32 --device cpu
$cnnc bench models/resnet18.cnn --batch 32 --device cuda || failed=1

step "train: LeNet, SGD 0.9, Xavier, 10 epochs, CPU then CUDA (same seed)"
lenet=(train models/lenet.cnn --data fashion-mnist --epochs 10 --batch 256 --optimizer sgd --lr 0.9 --init xavier --format json)
$cnnc "${lenet[@]}" --device cpu --out "$work/lenet.cpu.onnx"
$cnnc "${lenet[@]}" --device cuda --out "$work/lenet.cuda.onnx" || failed=1

step "train: LeNet-BN, Adam 0.001, 5 epochs, CPU then CUDA"
bn=(train models/lenet_bn.cnn --data fashion-mnist --epochs 5 --batch 256 --optimizer adam --lr 0.001 --format json)
$cnnc "${bn[@]}" --device cpu --out "$work/bn.cpu.onnx"
$cnnc "${bn[@]}" --device cuda --out "$work/bn.cuda.onnx" || failed=1

step "train: AlexNet at 224x224, 1 epoch on 2,560 images, CUDA"
$cnnc train models/alexnet.cnn --data fashion-mnist --resize 224 --epochs 1 --batch 128 \
    --optimizer sgd --lr 0.01 --limit-train 2560 --limit-test 1000 --device cuda \
    --out "$work/alexnet.cuda.onnx" || failed=1
fi

if want placement; then
step "node placement of the training step on CUDA, one short epoch of each trainable family"
# ONNX Runtime's verbose log says, per session, which nodes each execution provider runs
# ("All nodes placed on [CUDAExecutionProvider]" or a list of those left to the CPU).
for spec in lenet lenet_bn lenet_nopad_maxpool simple_cnn "alexnet --resize 224" \
    "vgg11 --resize 224" "nin --resize 224" "googlenet --resize 96" "resnet18 --resize 96" \
    "densenet --resize 96"; do
    read -r -a args <<<"$spec"
    m=${args[0]}
    echo "--- $spec"
    CNNC_ORT_LOG=verbose $cnnc train "models/$m.cnn" --data fashion-mnist "${args[@]:1}" \
        --epochs 1 --batch 32 --limit-train 64 --limit-test 32 --optimizer adam --lr 0.001 \
        --device cuda --out "$work/$m.placement.onnx" >"$work/$m.placement.log" 2>&1 || {
        failed=1
        tail -5 "$work/$m.placement.log"
    }
    grep -E "placed on|not assigned|Memcpy nodes|^epoch" "$work/$m.placement.log" | sed 's/^.*\] //' | sort | uniq -c
    grep -E -A12 "placed on \[CPUExecutionProvider\]" "$work/$m.placement.log" | sed 's/^.*\] //' | head -30
done

fi

if want perf; then
step "training throughput on the GPU: cnnc, then PyTorch eager (same model, recipe, data)"
ref=(python3 benches/reference/pytorch_train.py)
$cnnc train models/lenet.cnn --data fashion-mnist --epochs 3 --batch 256 --optimizer sgd \
    --lr 0.9 --init xavier --device cuda --timings --out "$work/lenet.perf.onnx" || failed=1
"${ref[@]}" lenet --epochs 3 --batch 256 --lr 0.9 --init xavier --device cuda --threads 16 || failed=1
$cnnc train models/alexnet.cnn --data fashion-mnist --resize 224 --epochs 3 --batch 128 \
    --optimizer sgd --lr 0.01 --limit-train 5120 --limit-test 1000 --device cuda --timings \
    --out "$work/alexnet.perf.onnx" || failed=1
"${ref[@]}" alexnet --resize 224 --epochs 3 --batch 128 --lr 0.01 --limit-train 5120 \
    --limit-test 1000 --device cuda --threads 16 || failed=1
$cnnc train models/resnet18.cnn --data fashion-mnist --resize 96 --epochs 2 --batch 256 \
    --optimizer adam --lr 0.001 --limit-train 10240 --limit-test 1000 --device cuda --timings \
    --out "$work/resnet18.perf.onnx" || failed=1
step "inference on the GPU: AlexNet, batch 128"
$cnnc bench models/alexnet.cnn --batch 128 --device cuda || failed=1
fi
if [ "$failed" = 1 ]; then
    echo "done: some CUDA tests or runs FAILED (the tests' logs are in \$OUT)"
    exit 1
fi
echo "done"
