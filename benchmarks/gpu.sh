#!/usr/bin/env bash
# Stage 1 on a lent GPU machine, in one command that fits its short lease: install what the machine lacks from the
# carried wheels (benchmarks/gpu_wheels.sh fills benchmarks/wheels here; the device tool carries it), then measure
# the bare forward, the input pipeline and `run_encode` end to end for ViT-B-32, ViT-B-16 and RN50 on 20,000
# generated 500 x 375 JPEGs, CPU and GPU decoding, and a short sweep (benchmarks/gpu_encode.py), into
# ${OUT:-.}/gpu_results.json. On the CPU here: `bash benchmarks/gpu.sh --smoke` (tiny model, 200 images, seconds).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -d benchmarks/wheels ] && ! python -c "import open_clip, distributed" 2>/dev/null; then
  python -m pip install --quiet --no-index --find-links benchmarks/wheels open_clip_torch ftfy wcwidth regex \
    dask distributed
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || echo "no GPU: CPU run"
timeout "${LIMIT:-480}" python benchmarks/gpu_encode.py --out "${OUT:-.}/gpu_results.json" --sweep "$@"
