"""Inside a training loop: periodic rank-k substitution for users' own RLVR runs.

- `periodic`: `substitute_rank_k_` (in place on a torch model), `PeriodicSubstitution` (every `every`
  optimizer steps), `linear_state` (the base weights it needs).
- `callbacks`: `RankKSubstitutionCallback`, a `transformers.TrainerCallback` for TRL / `Trainer` runs
  (imports transformers).

May import: `rlvr_core.math`, `rlvr_core.readers`, `rlvr_core.errors`; torch and transformers.
"""
