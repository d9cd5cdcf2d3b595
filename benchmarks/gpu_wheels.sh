#!/usr/bin/env bash
# The wheels a lent GPU machine lacks (it has PyTorch, torchvision, h5py, numpy, pillow, safetensors, xxhash, click,
# PyYAML, tqdm, matplotlib and timm, and no package registry), downloaded here into benchmarks/wheels (git-ignored)
# for the device tool's `carry`: at most 64 MiB travel. Then on the machine: bash benchmarks/gpu.sh
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p benchmarks/wheels
python -m pip download --quiet --no-deps --only-binary=:all: --dest benchmarks/wheels \
  open_clip_torch==3.3.0 dask==2026.8.0 distributed==2026.8.0 cloudpickle==3.1.3 importlib_metadata==10.2.0 \
  locket==1.0.0 msgpack==1.2.4 partd==1.4.2 psutil==7.2.2 sortedcontainers==2.4.0 tblib==3.2.2 toolz==1.2.0 \
  tornado==6.6.1 zict==3.0.0 ftfy==6.3.1 regex==2026.12.2 lazy-importer==0.1.0 zipp==4.1.2 wcwidth==0.9.5
# the versions this project's CI installs: exactly what `pip install --dry-run --report` resolves for open_clip_torch,
# dask and distributed in a virtual environment holding only the machine's own packages (torch, torchvision, timm...)
# dask-cuda is left out: with numba, llvmlite and pandas, which it imports, the folder passes 64 MiB; gpu.sh's sweep
# then runs on a local:1 engine (one worker process on the GPU) unless dask-cuda is already there
du -sh benchmarks/wheels
