#!/usr/bin/env bash
# The wheels a lent GPU machine lacks (it has PyTorch, torchvision, h5py, numpy, pillow, safetensors, xxhash, click,
# PyYAML, tqdm, matplotlib and timm, and no package registry), downloaded here into benchmarks/wheels (git-ignored)
# for the device tool's `carry`: at most 64 MiB travel. Then on the machine: bash benchmarks/gpu.sh
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p benchmarks/wheels
python -m pip download --quiet --no-deps --only-binary=:all: --dest benchmarks/wheels \
  open_clip_torch ftfy wcwidth regex huggingface_hub filelock fsspec packaging typing_extensions requests urllib3 \
  idna certifi charset_normalizer hf_xet dask distributed cloudpickle toolz partd locket msgpack psutil \
  sortedcontainers tblib tornado zict jinja2 markupsafe
# dask-cuda is left out: with numba, llvmlite and pandas, which it imports, the folder passes 64 MiB; gpu.sh's sweep
# then runs on a local:1 engine (one worker process on the GPU) unless dask-cuda is already there
du -sh benchmarks/wheels
