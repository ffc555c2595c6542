#!/usr/bin/env bash
# Installs what cnnc's run time and tests need beyond cargo: ONNX Runtime and the `onnx`
# checker (PyPI), and Fashion-MNIST (Debian). Idempotent; quiet when all is present.
set -euo pipefail

if ! python3 -c "import onnx, onnxruntime, numpy" 2>/dev/null; then
    echo "setup: installing onnx, onnxruntime, numpy from PyPI" >&2
    python3 -m pip install --quiet --disable-pip-version-check onnx onnxruntime numpy
fi

if [ ! -e /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ]; then
    if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
        echo "setup: installing dataset-fashion-mnist (Debian)" >&2
        apt-get update -qq >/dev/null
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist >/dev/null
    else
        echo "setup: Fashion-MNIST is missing; run: sudo apt-get update && sudo apt-get install dataset-fashion-mnist" >&2
    fi
fi
