#!/usr/bin/env bash
# The one command for a lent GPU (device tool: run this, nothing else; give the machine back
# after). Correctness first, then timings, each with its baselines in the same process:
#   kernels  (issue 3): gnnrec bench kernels: device check against fp64, copy bandwidth, Triton
#            vs cuSPARSE / PyG / torch-sparse, GCN layer vs GCNConv (rows written per graph);
#   epoch    (issue 5): gnnrec bench epoch: products-scale sampled epochs, our GPU sampler with
#            the graph on the device and pinned in host memory, our CPU sampler, the GPU
#            uniformity check (rows written per loader);
#   attention (issue 16): gnnrec bench attention: our GAT layer (Triton kernels) against PyG's
#            GATConv with the same weights, forward + backward, time and peak device memory, on
#            products-shaped sampled batches and on a quarter of the products-like graph whole;
#   train    `gnnrec train` on the bundled data on the GPU (full graph; sampled with the graph
#            on the device; sampled from pinned memory; row-wise ID tables pinned in host
#            memory with hot rows cached on the GPU; a GAT model on the Triton attention
#            kernels, sampled on the device): the user-facing GPU paths end to end;
#   papers   (issue 5): gnnrec bench epoch --scale papers100m (rows into epoch.jsonl): 111M
#            nodes, 1.6B edges drawn on the GPU, graph and 28 GB of bf16 features pinned in
#            host memory;
#   phrasing (issue 27; not in the default list): gnnrec bench phrasing on one ID-only run
#            trained here, the same 100 prompts through transformers on the GPU and through
#            vLLM (where it imports), PHRASING_MODEL a local instruct model folder (both read
#            one; vLLM reads no .gguf). The model and vLLM must be on the machine already: with
#            64 MiB carried, neither fits (SmolLM2-135M is 98 MB as a .gguf; vLLM's wheel is
#            larger).
# Each part has a budget in seconds (KERNELS_S, ATTENTION_S per case, EPOCH_S, TRAIN_S per run,
# PAPERS_S; defaults sum to 550 s, to fit one 600 s call with the setup) and keeps what it
# measured when cut short; KERNELS_ARGS, EPOCH_ARGS, PAPERS_ARGS add flags. Results go to $OUT
# (the device tool's folder, at most 8 files: session.log, and per bench a .jsonl + .png:
# kernels, attention, and epoch with papers' rows), else bench/results/gpu.
# gnnrec imports tomli_w (config.toml), which the GPU image lacks: first, here,
# `pip download --no-deps -d .whl tomli-w` (.whl/ is git-ignored), then name `.whl` in the
# device call's carry.
# The device copy has no .git: give the commit measured, GNNREC_GIT_SHA=$(git rev-parse
# --short HEAD) written out literally in the command, so every row records it.
#   GNNREC_GIT_SHA=abc1234 bash bench/gpu_session.sh   # run(command=..., carry=[".whl"],
#                                                      #     timeout_s=590)
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
# The image has torch, triton, PyG, numpy, pyarrow, tqdm and matplotlib but no network: tomli_w
# from the carried wheel, then the package itself only, from this tree.
if ! python3 -c "import tomli_w" 2>/dev/null; then
    if ! ls .whl/tomli_w-*.whl >/dev/null 2>&1; then
        echo "tomli_w is missing and no .whl/tomli_w-*.whl was carried" | tee -a "$LOG"
        exit 1
    fi
    python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/tomli_w-*.whl
    export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
# If the image's setuptools cannot build it (pyproject needs setuptools >= 77), lay the package
# out by symlinks on PYTHONPATH instead: the same files, no build step.
if ! python3 -m pip install -q --no-deps --no-build-isolation --no-index -e . >>"$LOG" 2>&1; then
    echo "editable install failed (tail of the log below); using a symlinked source tree" \
        | tee -a "$LOG"
    tail -5 "$LOG"
    rm -rf /tmp/gnnrec-src && mkdir -p /tmp/gnnrec-src/gnnrec
    ln -s "$PWD"/gnnrec/*.py /tmp/gnnrec-src/gnnrec/
    # every subpackage pyproject maps ("gnnrec.X" = "X")
    for part in $(sed -n 's/^"gnnrec\.\([a-z_]*\)" = "\([a-z_]*\)"$/\2/p' pyproject.toml); do
        ln -s "$PWD/$part" "/tmp/gnnrec-src/gnnrec/$part"
    done
    export PYTHONPATH=/tmp/gnnrec-src${PYTHONPATH:+:$PYTHONPATH}
    python3 -c "import gnnrec.kernels, gnnrec.train.trainer" >>"$LOG" 2>&1 \
        || { tail -20 "$LOG"; exit 1; }
fi

train_part() {
    local k=0
    for mode in "full" "sampled device" "sampled pinned"; do
        set -- $mode
        k=$((k + 1))
        echo "-- gnnrec train: mode $1 ${2:+sample_on $2}"
        timeout "${TRAIN_S:-20}" python3 -m gnnrec.cli train --debug --run-dir "/tmp/gpu-train-$k" \
            --set model.text_features=false --set train.epochs=3 --set train.progress=false \
            --set "train.mode=$1" ${2:+--set train.sample_on=$2}
    done
    echo "-- gnnrec train: mode sampled, row-wise ID tables pinned in host memory, 1000 rows cached"
    timeout "${TRAIN_S:-20}" python3 -m gnnrec.cli train --debug --run-dir /tmp/gpu-train-4 \
        --set model.text_features=false --set train.epochs=3 --set train.progress=false \
        --set train.mode=sampled --set train.id_optimizer=rowwise_adagrad \
        --set train.id_table_on=pinned --set train.id_cache_rows=1000
    echo "-- gnnrec train: a GAT model (the Triton attention kernels), mode sampled on the device"
    timeout "${TRAIN_S:-20}" python3 -m gnnrec.cli train --debug --run-dir /tmp/gpu-train-5 \
        --set model.text_features=false --set train.epochs=3 --set train.progress=false \
        --set model.name=gat --set train.mode=sampled --set train.sample_on=device
}

phrasing_part() {
    if [ -z "${PHRASING_MODEL:-}" ]; then
        echo "phrasing: PHRASING_MODEL is not set (a local instruct model folder)"
        return
    fi
    timeout "${TRAIN_S:-20}" python3 -m gnnrec.cli train --run-dir /tmp/gpu-phrasing-run \
        --set model.text_features=false --set train.epochs=3 --set train.progress=false
    local args=(--run-dir /tmp/gpu-phrasing-run --generator-model "$PHRASING_MODEL"
        --pairs 100 --batch-size 32 --output "$OUT/phrasing.jsonl")
    timeout "${PHRASING_S:-120}" python3 -m gnnrec.bench.phrasing "${args[@]}" \
        --generator-backend hf --generator-device "${PHRASING_DEVICE:-cuda}"
    if python3 -c "import vllm" 2>/dev/null; then
        timeout "${PHRASING_S:-120}" python3 -m gnnrec.bench.phrasing "${args[@]}" \
            --generator-backend vllm
    else
        echo "phrasing: vllm does not import here; transformers only"
    fi
}

run_part() {
    case $1 in
    kernels)
        timeout "${KERNELS_S:-110}" python3 -m gnnrec.bench.kernels \
            --output "$OUT/kernels.jsonl" ${KERNELS_ARGS:-} ;;
    attention)
        timeout "${ATTENTION_S:-70}" python3 -m gnnrec.bench.attention --batches 2 \
            --output "$OUT/attention.jsonl"
        timeout "${ATTENTION_S:-70}" python3 -m gnnrec.bench.attention --batches 1 \
            --scale 0.25 --batch-size 0 --output "$OUT/attention.jsonl" ;;
    epoch)
        timeout "${EPOCH_S:-90}" python3 -m gnnrec.bench.epoch --build memory --full-epoch \
            --max-seconds 25 --output "$OUT/epoch.jsonl" ${EPOCH_ARGS:-} ;;
    train)
        train_part ;;
    papers)
        timeout "${PAPERS_S:-110}" python3 -m gnnrec.bench.epoch --scale papers100m \
            --full-epoch --max-seconds 50 --output "$OUT/epoch.jsonl" ${PAPERS_ARGS:-} ;;
    phrasing)
        phrasing_part ;;
    *)
        echo "unknown part $1 (kernels, attention, epoch, train, papers, phrasing)" ;;
    esac
}

for part in ${*:-kernels attention epoch train papers}; do
    echo "== $part $(date -u +%T)" | tee -a "$LOG"
    run_part "$part" 2>&1 | tee -a "$LOG"
done
echo "== done $(date -u +%T)" | tee -a "$LOG"
