#!/usr/bin/env bash
# One call that runs every GPU check and benchmark of a session on a lent GPU machine.
#
# Prepare on the development machine (once per session; both folders are ignored):
#   mkdir -p .data && cp ../shared/data/mnist.npz .data/
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 \
#       --implementation cp --platform manylinux2014_x86_64 -d .whl skorch==1.4.0
# then run, with the device tool: command "bash benchmarks/gpu_session.sh",
# carry [".whl", ".data"]. Results come back under $OUT: log.txt, gpu.txt and
# results.tgz (the new benchmarks/results/*cuda* files; at most 8 files come back).
# The stages are ordered by value; each is skipped when too little time is left
# (GPU_BUDGET_S, default 540 s: one call may last 600 s).
set -u
OUT=${OUT:-/tmp/gpu_out}
mkdir -p "$OUT"
START=$(date +%s)
BUDGET=${GPU_BUDGET_S:-540}
DATA=${DATA:-.data/mnist.npz}
left() { echo $((BUDGET - ($(date +%s) - START))); }
stage() {  # stage NAME SECONDS_NEEDED COMMAND...
    local name=$1 need=$2; shift 2
    if [ "$(left)" -lt "$need" ]; then echo "skip $name: $(left) s left" | tee -a "$OUT/log.txt"; return; fi
    echo "== $name ($(left) s left)" | tee -a "$OUT/log.txt"
    timeout "$(left)" "$@" >>"$OUT/log.txt" 2>&1
    echo "== $name exit $?" | tee -a "$OUT/log.txt"
}

if [ -d .whl ]; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir \
        --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site:$PWD
else
    export PYTHONPATH=$PWD
fi
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv >"$OUT/gpu.txt" 2>&1
python3 -c "import torch, sklearn, skorch; print(torch.__version__, sklearn.__version__, skorch.__version__, torch.cuda.get_device_name())" >>"$OUT/gpu.txt" 2>&1

stage cuda-tests 120 python3 -m pytest -m cuda -q -p no:cacheprovider tests
# three of the seven methods (all of them need several minutes; ART is not installed)
stage throughput 90 python3 -m benchmarks.throughput --data mnist --data-path "$DATA" \
    --module smallcnn --n-train 10000 --device cuda --repeats 3 \
    --methods pgd_at trades fast_at
stage precision 200 python3 -m benchmarks.precision --data mnist --data-path "$DATA" \
    --n-train 10000 --n-test 500 --device cuda --epochs 4 \
    --train-precisions fp32 bf16 fp16 bf16+channels_last fp32+compile_step fp32+compile \
    --eval-precisions fp32 bf16 fp16
stage methods 240 python3 -m benchmarks.run_methods --data mnist --data-path "$DATA" \
    --device cuda --epochs 10 --seeds 0 --methods natural pgd_at trades gairat dale
stage robust-datasets 180 python3 -m benchmarks.robust_datasets --data mnist \
    --data-path "$DATA" --n-train 10000 --n-test 1000 --archs mlp \
    --device cuda

tar czf "$OUT/results.tgz" benchmarks/results/*cuda* 2>>"$OUT/log.txt"
tar tzf "$OUT/results.tgz" >>"$OUT/log.txt" 2>&1
