#!/usr/bin/env bash
# The worker's GPU benchmark on a machine that has CUDA PyTorch but no network (the project's lent GPU
# machines): installs the carried wheels (`.whl/`, made by bench/gpu/fetch_wheels.sh) into /tmp/site,
# then runs bench/worker_efficiency.py. Output lines go to stdout and to $OUT/worker_efficiency.txt.
set -uo pipefail
cd "$(dirname "$0")/../.."
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH="/tmp/site:$PWD/src" PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1
export OPENHORDE_CLIP_VOCAB="$PWD/.whl/bpe_simple_vocab_16e6.txt.gz"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -c "import torch, diffusers, transformers; print('torch', torch.__version__, 'diffusers', diffusers.__version__, 'transformers', transformers.__version__)"
log="${OUT:-/tmp}/worker_efficiency.txt"
python3 bench/worker_efficiency.py "$@" 2>&1 | grep -v "requires torchvision" | tee "$log"
