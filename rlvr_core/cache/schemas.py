"""The cache's schemas: the columns of every view, a public contract.

The columns issues name come first, in their order; later columns are additions. Users' scripts query
these views through `open_cache`, so a column is never renamed or removed.

- `SCHEMAS`: per-step views, one Parquet file per view in each step folder.
- `RUN_SCHEMAS`: per-run views, one file per view in each run folder.
- `EVAL_SCHEMAS` (`schemas_eval`): per-evaluation views, one file per view in each evaluation folder.
"""

from __future__ import annotations

import pyarrow as pa

SCHEMAS: dict[str, pa.Schema] = {
    "checkpoints": pa.schema(
        [
            ("run", pa.string()),
            ("step", pa.int64()),
            ("path", pa.string()),
            ("fingerprint", pa.string()),
            ("n_tensors", pa.int64()),
            ("analyzed_at", pa.timestamp("us", tz="UTC")),
            ("layout", pa.string()),
            ("base_path", pa.string()),
            ("base_fingerprint", pa.string()),
            ("settings", pa.string()),
            ("n_analyzed", pa.int64()),
            ("device", pa.string()),
            ("seconds", pa.float64()),
            ("is_base", pa.bool_()),
            ("tool_version", pa.string()),
            ("source", pa.string()),
            ("revision", pa.string()),
            ("weights_source", pa.string()),
            ("weights_dtype", pa.string()),
            ("dw_zero_fraction", pa.float64()),
        ]
    ),
    "layers": pa.schema(
        [
            ("run", pa.string()),
            ("step", pa.int64()),
            ("tensor", pa.string()),
            ("layer", pa.int32()),
            ("module", pa.string()),
            ("rows", pa.int64()),
            ("cols", pa.int64()),
            ("target", pa.string()),
            ("fro_norm", pa.float64()),
            ("spectral_norm", pa.float64()),
            ("stable_rank", pa.float64()),
            ("rank1_energy", pa.float64()),
            ("kind", pa.string()),
            ("dtype", pa.string()),
            ("expert", pa.int32()),
            ("zero_fraction", pa.float64()),
        ]
    ),
    "spectra": pa.schema(
        [
            ("run", pa.string()),
            ("step", pa.int64()),
            ("tensor", pa.string()),
            ("target", pa.string()),
            ("sv", pa.list_(pa.float64())),
        ]
    ),
    "vectors": pa.schema(
        [
            ("run", pa.string()),
            ("step", pa.int64()),
            ("tensor", pa.string()),
            ("k", pa.int32()),
            ("sigma", pa.float64()),
            ("u", pa.list_(pa.float32())),
            ("v", pa.list_(pa.float32())),
            ("target", pa.string()),
        ]
    ),
    "fits": pa.schema(
        [
            ("run", pa.string()),
            ("step", pa.int64()),
            ("tensor", pa.string()),
            ("target", pa.string()),
            ("alpha", pa.float64()),
            ("xmin", pa.float64()),
            ("alpha_se", pa.float64()),
            ("ks_d", pa.float64()),
            ("n_tail", pa.int64()),
            ("lr_exponential", pa.float64()),
            ("p_exponential", pa.float64()),
            ("lr_lognormal", pa.float64()),
            ("p_lognormal", pa.float64()),
            ("lr_truncated_power_law", pa.float64()),
            ("p_truncated_power_law", pa.float64()),
            ("heavy_tailed", pa.bool_()),
            ("alpha_weighted", pa.float64()),
            ("fit_status", pa.string()),
            ("fit_error", pa.string()),
            ("log_spectral_norm", pa.float64()),
            ("log_norm", pa.float64()),
            ("stable_rank", pa.float64()),
            ("n_evals", pa.int64()),
            ("log_fro_norm", pa.float64()),
        ]
    ),
    "esd_hist": pa.schema(
        [
            ("run", pa.string()),
            ("step", pa.int64()),
            ("tensor", pa.string()),
            ("target", pa.string()),
            ("bin_lo", pa.float64()),
            ("bin_hi", pa.float64()),
            ("density", pa.float64()),
        ]
    ),
    "tensors": pa.schema(
        [
            ("run", pa.string()),
            ("step", pa.int64()),
            ("tensor", pa.string()),
            ("layer", pa.int32()),
            ("module", pa.string()),
            ("kind", pa.string()),
            ("dtype", pa.string()),
            ("shape", pa.list_(pa.int64())),
            ("analyzed", pa.bool_()),
            ("nonfinite", pa.bool_()),
            ("expert", pa.int32()),
        ]
    ),
    "update_geometry": pa.schema(
        [
            ("run", pa.string()),
            ("step", pa.int64()),
            ("tensor", pa.string()),
            ("layer", pa.int32()),
            ("module", pa.string()),
            ("expert", pa.int32()),
            ("rows", pa.int64()),
            ("cols", pa.int64()),
            ("dtype", pa.string()),
            ("unchanged_share", pa.float64()),
            ("within_e8", pa.float64()),
            ("within_e6", pa.float64()),
            ("within_e5", pa.float64()),
            ("within_e4", pa.float64()),
            ("numerical_rank", pa.int64()),
            ("numerical_rank_share", pa.float64()),
            ("rotation_u_k1", pa.float64()),
            ("rotation_u_k8", pa.float64()),
            ("rotation_u_k32", pa.float64()),
            ("rotation_v_k1", pa.float64()),
            ("rotation_v_k8", pa.float64()),
            ("rotation_v_k32", pa.float64()),
            ("drift_k1", pa.float64()),
            ("drift_k8", pa.float64()),
            ("drift_k32", pa.float64()),
            ("drift_all", pa.float64()),
            ("off_principal_k1", pa.float64()),
            ("off_principal_k8", pa.float64()),
            ("off_principal_k32", pa.float64()),
            ("value_share", pa.float64()),
            ("changed_sample", pa.binary()),
        ]
    ),
}
"""The columns of each per-step view (one file per step folder). The columns issues name come first, in
their order; later columns are additions."""

RUN_SCHEMAS: dict[str, pa.Schema] = {
    "alignment": pa.schema(
        [
            ("run", pa.string()),
            ("tensor", pa.string()),
            ("step", pa.int64()),
            ("cos_u_final", pa.float64()),
            ("cos_u_prev", pa.float64()),
            ("cos_u_first", pa.float64()),
            ("cos_v_final", pa.float64()),
            ("cos_v_prev", pa.float64()),
            ("cos_v_first", pa.float64()),
            ("overlap_topk_final", pa.float64()),
            ("overlap_base_principal", pa.float64()),
            ("layer", pa.int32()),
            ("module", pa.string()),
            ("sigma1", pa.float64()),
            ("chance_cos_u", pa.float64()),
            ("chance_cos_v", pa.float64()),
            ("chance_overlap", pa.float64()),
        ]
    ),
    "rank1_dynamics": pa.schema(
        [
            ("run", pa.string()),
            ("tensor", pa.string()),
            ("layer", pa.int32()),
            ("module", pa.string()),
            ("n_steps", pa.int64()),
            ("r2_linear", pa.float64()),
            ("sigma1_first", pa.float64()),
            ("sigma1_final", pa.float64()),
        ]
    ),
    "metrics": pa.schema(
        [
            ("run", pa.string()),
            ("step", pa.int64()),
            ("name", pa.string()),
            ("value", pa.float64()),
            ("source", pa.string()),
        ]
    ),
    "run_summary": pa.schema(
        [
            ("run", pa.string()),
            ("reward_metric", pa.string()),
            ("test_metric", pa.string()),
            ("spearman", pa.float64()),
            ("reward_peak_step", pa.int64()),
            ("test_peak_step", pa.int64()),
            ("n_shared_steps", pa.int64()),
            ("log_format", pa.string()),
            ("log_path", pa.string()),
            ("test_metric_note", pa.string()),
            ("n_log_files", pa.int64()),
        ]
    ),
    "recovery": pa.schema(
        [
            ("run", pa.string()),
            ("step", pa.int64()),
            ("rank", pa.int64()),
            ("mode", pa.string()),
            ("dataset", pa.string()),
            ("acc_base", pa.float64()),
            ("acc_full", pa.float64()),
            ("acc_rank", pa.float64()),
            ("recovery", pa.float64()),
            ("n_problems", pa.int64()),
            ("eval_id_base", pa.string()),
            ("eval_id_full", pa.string()),
            ("eval_id_rank", pa.string()),
            ("gain_low", pa.float64()),
            ("gain_high", pa.float64()),
            ("recovery_low", pa.float64()),
            ("recovery_high", pa.float64()),
            ("recovery_note", pa.string()),
            ("keep", pa.string()),
            ("alpha", pa.float64()),
            ("modules", pa.string()),
            ("gained_vs_full", pa.int64()),
            ("lost_vs_full", pa.int64()),
            ("mcnemar_full_p", pa.float64()),
            ("gained_vs_base", pa.int64()),
            ("lost_vs_base", pa.int64()),
            ("mcnemar_base_p", pa.float64()),
        ]
    ),
    "decoupling": pa.schema(
        [
            ("run", pa.string()),
            ("step", pa.int64()),
            ("status", pa.string()),
            ("since", pa.int64()),
            ("window_start", pa.int64()),
            ("reward_metric", pa.string()),
            ("test_metric", pa.string()),
            ("level", pa.float64()),
            ("reward_slope", pa.float64()),
            ("reward_low", pa.float64()),
            ("reward_high", pa.float64()),
            ("n_reward", pa.int64()),
            ("test_slope", pa.float64()),
            ("test_low", pa.float64()),
            ("test_high", pa.float64()),
            ("n_test", pa.int64()),
            ("pool_metric", pa.string()),
            ("gap_slope", pa.float64()),
            ("gap_low", pa.float64()),
            ("gap_high", pa.float64()),
            ("gap_widening", pa.bool_()),
        ]
    ),
    "predictions": pa.schema(
        [
            ("run", pa.string()),
            ("from_step", pa.int64()),
            ("to_step", pa.int64()),
            ("tensor", pa.string()),
            ("layer", pa.int64()),
            ("module", pa.string()),
            ("rank", pa.int64()),
            ("cos_u1", pa.float64()),
            ("sigma_pred", pa.float64()),
            ("sigma_real", pa.float64()),
            ("sigma_error", pa.float64()),
            ("fro_error", pa.float64()),
            ("fit_slope", pa.float64()),
            ("fit_intercept", pa.float64()),
            ("fit_r2", pa.float64()),
            ("n_fit_steps", pa.int64()),
        ]
    ),
    "metric_correlations": pa.schema(
        [
            ("run", pa.string()),
            ("test_metric", pa.string()),
            ("metric", pa.string()),
            ("target", pa.string()),
            ("level", pa.string()),
            ("module", pa.string()),
            ("layer", pa.int64()),
            ("tensor", pa.string()),
            ("n_steps", pa.int64()),
            ("spearman", pa.float64()),
            ("p_value", pa.float64()),
            ("exact", pa.bool_()),
            ("spearman_change", pa.float64()),
            ("p_change", pa.float64()),
            ("n_changes", pa.int64()),
            ("p_adjusted", pa.float64()),
            ("flag", pa.string()),
        ]
    ),
    "claims": pa.schema(
        [
            ("run", pa.string()),
            ("step", pa.int64()),
            ("claim_id", pa.string()),
            ("claim", pa.string()),
            ("citation", pa.string()),
            ("measure", pa.string()),
            ("value", pa.float64()),
            ("low", pa.float64()),
            ("high", pa.float64()),
            ("n", pa.int64()),
            ("chance", pa.float64()),
            ("chance_low", pa.float64()),
            ("chance_high", pa.float64()),
            ("verdict", pa.string()),
            ("reason", pa.string()),
            ("compare", pa.string()),
        ]
    ),
    "chance_levels": pa.schema(
        [
            ("run", pa.string()),
            ("rows", pa.int64()),
            ("cols", pa.int64()),
            ("measure", pa.string()),
            ("chance", pa.float64()),
            ("chance_low", pa.float64()),
            ("chance_high", pa.float64()),
        ]
    ),
}
"""The columns of each per-run view (one file per run folder, rewritten whole, atomically). `decoupling`:
the implicit-reward-overfitting monitor (`math.monitor`) at each held-out step of the ingested log.
`predictions`: rank-k extrapolation from the steps <= from_step to to_step (`math.predict`; the real
columns are NULL when to_step is not analysed, `fro_error` also when its checkpoint files are gone).
`metric_correlations`: Spearman's rho over steps of each spectral metric with the held-out metric, and its
permutation p-value (`math.correlate`), per tensor (`level` = `tensor`) and per module kind (`module`: the
median over layers). `chance_levels`: what an i.i.d. Gaussian matrix of each of the run's update shapes
gives for the shape-only measures of the `layers` view (`math.chance.gaussian_matrix`; written with the
claims board)."""
