"""Readers: what users bring, read and validated, never modified.

- `checkpoint`: Hugging Face safetensors folders (single file or sharded), header-validated and read one
  tensor at a time; the one base-vs-step tensor check (`check_same_tensors`).
- `layout`: run folders of TRL, verl, OpenRLHF and plain layouts -> (step, checkpoint folder).
- `naming`: tensor names -> (layer, module, kind) for the supported architectures.
- `trainlog`: training logs (verl, TRL, OpenRLHF, TensorBoard, CSV/JSONL) -> (step, metric, value).
- `datasets`: evaluation sets (JSONL benchmarks, the demo's built-in arithmetic set).
- `log_metrics`: which logged names are the reward, the test score and the training-pool accuracy.
- `safetensors_header`: the full header check.
- `completeness`: whether a checkpoint a trainer is still writing is complete (`rlvr watch`).

May import: `rlvr_core.errors`, `rlvr_core.system`, and `rlvr_core.math` (`math.arithmetic`: the built-in set).
Never imports torch at module level (the dashboard lists checkpoints through these readers).
"""
