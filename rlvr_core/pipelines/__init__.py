"""Pipelines: user-visible work that reads inputs, runs the math and writes results (each one `rlvr`
command).

- `analyze` (`rlvr analyze`): checkpoints -> per-layer spectra, triplets and heavy-tail fits in the cache
  (the only module that places tensors on a GPU); `step_rows` builds its tables; `run_alignment`
  recomputes the run-level alignment and rank-1 dynamics from the cached steps.
- `logs` (`rlvr logs`): a training log -> `metrics`, `run_summary` and the monitor's `decoupling`.
- `watch` (`rlvr watch`): a run being written -> each complete checkpoint analysed, the log re-ingested.
- `substitute` (`rlvr substitute`): a checkpoint folder with each linear weight W_base + rank-k(dW).
- `evaluate` (`rlvr evaluate`) with `generation`: generate, grade, store an evaluation.
- `compare` (`rlvr compare`): base, full and rank-k variants evaluated alike; recovery rows.

May import: `rlvr_core.cache`, `rlvr_core.math`, `rlvr_core.readers`, `rlvr_core.system`,
`rlvr_core.errors`; torch, transformers (and vLLM when present).
"""
