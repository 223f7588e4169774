#!/usr/bin/env bash
# The device check for issue 2, run on a lent GPU machine in one call (about 6 minutes):
#   CUDA tests, engine micro-timings, and the 7B-shape bench (rlvr analyze vs the naive baseline).
# Needs duckdb as a carried wheel in .whl/ (the device image has torch, safetensors, pyarrow, tqdm).
set -euo pipefail
export PYTHONUNBUFFERED=1
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
  export PYTHONPATH=/tmp/site:$PWD
else
  export PYTHONPATH=$PWD
fi
nvidia-smi -L
python3 -c "import torch, sys; print('python', sys.version.split()[0], 'torch', torch.__version__)"
python3 -m pytest -q -x -p no:cacheprovider tests/test_spectral.py tests/test_analyze.py -k "cuda or planted or gpt2"
python3 bench/gpu_micro.py --device cuda
python3 bench/spectra.py --shape qwen7b --device cuda --threads 16 --triplets eigh --skip-baseline --workdir /tmp/rb
python3 bench/spectra.py --shape qwen7b --device cuda --threads 16 --triplets lowrank --baseline-blocks 2 --workdir /tmp/rb
