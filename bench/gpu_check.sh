#!/usr/bin/env bash
# The device check, run on a lent GPU machine in one call (about 5 minutes): CUDA tests, then the
# 7B-shape bench of rlvr analyze (spectra, then with fits). The naive baseline is measured on 2 blocks
# with --baseline-blocks 2 when time allows (it took 350 s per checkpoint, scaled, on an H100).
# Needs duckdb and powerlaw as carried wheels in .whl/ (the device image has torch, safetensors,
# pyarrow, tqdm, scipy, threadpoolctl, tensorboard).
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
python3 bench/spectra.py --shape qwen7b --device cuda --threads 16 --skip-baseline --exhaustive 0 --workdir /tmp/rb
