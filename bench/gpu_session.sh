#!/usr/bin/env bash
# The one command for a lent GPU (device tool: run this, nothing else; give the machine back
# after). Correctness first, then timings, each with its baselines in the same process:
#   kernels  (issue 3): gnnrec bench kernels: device check against fp64, copy bandwidth, Triton
#            vs cuSPARSE / PyG / torch-sparse, GCN layer vs GCNConv (rows written per graph);
#   epoch    (issue 5): gnnrec bench epoch: products-scale sampled epochs, our GPU sampler with
#            the graph on the device and pinned in host memory, our CPU sampler, the GPU
#            uniformity check (rows written per loader);
#   papers   (issue 5): gnnrec bench epoch --scale papers100m: 111M nodes, 1.6B edges drawn on
#            the GPU, graph and 28 GB of bf16 features pinned in host memory.
# Each part has a budget in seconds (KERNELS_S, EPOCH_S, PAPERS_S; defaults fit one 600 s call)
# and keeps what it measured when cut short; KERNELS_ARGS, EPOCH_ARGS, PAPERS_ARGS add flags. Results go to $OUT (the device tool's folder, at
# most 8 files: session.log, and per part .jsonl + .png), else bench/results/gpu.
#   bash bench/gpu_session.sh                  # run(command="bash bench/gpu_session.sh", timeout_s=590)
#   bash bench/gpu_session.sh papers           # parts by name, in the order given
set -uo pipefail
OUT=${OUT:-bench/results/gpu}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
LOG="$OUT/session.log"
{
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
    python3 -c "import torch, triton; print('torch', torch.__version__, 'triton', triton.__version__)"
    nproc
    free -g
} 2>&1 | tee "$LOG"
# The image has torch, triton, PyG, numpy, tqdm and matplotlib but no network: install the
# package itself only, from this tree.
python3 -m pip install -q --no-deps --no-build-isolation --no-index -e . >>"$LOG" 2>&1 \
    || { tail -20 "$LOG"; exit 1; }
for part in ${*:-kernels epoch papers}; do
    echo "== $part $(date -u +%T)" | tee -a "$LOG"
    case $part in
    kernels)
        timeout "${KERNELS_S:-200}" python3 -m gnnrec.bench.kernels \
            --output "$OUT/kernels.jsonl" ${KERNELS_ARGS:-} ;;
    epoch)
        timeout "${EPOCH_S:-170}" python3 -m gnnrec.bench.epoch --build memory --full-epoch \
            --max-seconds 25 --output "$OUT/epoch.jsonl" ${EPOCH_ARGS:-} ;;
    papers)
        timeout "${PAPERS_S:-190}" python3 -m gnnrec.bench.epoch --scale papers100m \
            --full-epoch --max-seconds 90 --output "$OUT/papers.jsonl" ${PAPERS_ARGS:-} ;;
    *)
        echo "unknown part $part (kernels, epoch, papers)" ;;
    esac 2>&1 | tee -a "$LOG"
done
echo "== done $(date -u +%T)" | tee -a "$LOG"
