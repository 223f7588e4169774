"""The cache's evaluation schemas (a public contract, as `schemas`): one folder per evaluation,
`<cache>/evals/<eval_id>/`, one Parquet file per view; and `list_column`, the LIST column builder."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

EVAL_SCHEMAS: dict[str, pa.Schema] = {
    "evaluations": pa.schema(
        [
            ("eval_id", pa.string()),
            ("run", pa.string()),
            ("step", pa.int64()),
            ("variant", pa.string()),
            ("rank", pa.int64()),
            ("mode", pa.string()),
            ("dataset", pa.string()),
            ("n", pa.int64()),
            ("temperature", pa.float64()),
            ("accuracy", pa.float64()),
            ("pass_at_k", pa.float64()),
            ("n_problems", pa.int64()),
            ("started_at", pa.timestamp("us", tz="UTC")),
            ("finished_at", pa.timestamp("us", tz="UTC")),
            ("top_p", pa.float64()),
            ("max_new_tokens", pa.int64()),
            ("k", pa.int64()),
            ("model_path", pa.string()),
            ("model_fingerprint", pa.string()),
            ("backend", pa.string()),
            ("device", pa.string()),
            ("tokens", pa.int64()),
            ("tokens_per_s", pa.float64()),
            ("seconds", pa.float64()),
            ("dataset_kind", pa.string()),
            ("seed", pa.int64()),
        ]
    ),
    "eval_samples": pa.schema(
        [
            ("eval_id", pa.string()),
            ("problem_id", pa.string()),
            ("sample", pa.int64()),
            ("completion", pa.string()),
            ("extracted", pa.string()),
            ("correct", pa.bool_()),
            ("gold", pa.string()),
        ]
    ),
}
"""The columns of the evaluation views (one folder per evaluation: `<cache>/evals/<eval_id>/`)."""


def list_column(arrays: list[np.ndarray], value_type: pa.DataType) -> pa.ListArray:
    """A LIST column from a list of 1-D numpy arrays, without Python-level boxing of the values."""
    lengths = np.fromiter((a.size for a in arrays), dtype=np.int32, count=len(arrays))
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32)
    flat = np.concatenate(arrays) if arrays else np.zeros(0)
    return pa.ListArray.from_arrays(pa.array(offsets), pa.array(flat, type=value_type))
