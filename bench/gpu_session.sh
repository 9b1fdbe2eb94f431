#!/usr/bin/env bash
# The one command for a lent GPU (device tool: run this, nothing else; give the machine back
# after). Correctness first, then timings, each with its baselines in the same process:
#   1. gnnrec bench kernels  (issue 3): device check against fp64, copy bandwidth, Triton vs
#      cuSPARSE / PyG / torch-sparse, GCN layer vs GCNConv;
#   2. gnnrec bench epoch    (issue 5): products-scale sampled epochs, our GPU sampler with the
#      graph on the device and pinned in host memory, our CPU sampler, the GPU uniformity check.
# Results (at most 8 files) go to $OUT (the device tool's folder), else bench/results/gpu.
# Budgets in seconds: KERNELS_S, EPOCH_S; pass arguments through KERNELS_ARGS / EPOCH_ARGS.
#   bash bench/gpu_session.sh          # e.g. run(command="bash bench/gpu_session.sh", timeout_s=580)
set -uo pipefail
OUT=${OUT:-bench/results/gpu}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
{
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
    python3 -c "import torch, triton; print('torch', torch.__version__, 'triton', triton.__version__)"
} 2>&1 | tee "$OUT/gpu.txt"
# The image has torch, triton, PyG, numpy, tqdm and matplotlib but no network: install the
# package itself only, from this tree.
python3 -m pip install -q --no-deps --no-build-isolation --no-index -e . >"$OUT/install.log" 2>&1 \
    || { cat "$OUT/install.log"; exit 1; }
timeout "${KERNELS_S:-240}" python3 -m gnnrec.bench.kernels ${KERNELS_ARGS:-} \
    --output "$OUT/kernels.jsonl" 2>&1 | tee "$OUT/kernels.log"
timeout "${EPOCH_S:-280}" python3 -m gnnrec.bench.epoch --full-epoch --workdir /tmp ${EPOCH_ARGS:-} \
    --output "$OUT/epoch.jsonl" 2>&1 | tee "$OUT/epoch.log"
