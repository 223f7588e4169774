"""Arrow tables of one analysed step, typed by `cache.SCHEMAS`: the rows the analysis writes.

`StepRows` collects per-tensor results (spectra, stats, triplets, heavy-tail fits, ESD histograms, the
update's geometry)
and builds the tables with typed columns; list columns are built from numpy without boxing values.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa

from ..cache import SCHEMAS, list_column
from ..math.geometry import KS
from ..readers.naming import TensorRole

if TYPE_CHECKING:  # pragma: no cover
    from ..math.geometry import UpdateGeometry
    from ..math.heavytail import PowerLawFit
    from ..math.spectral import MatrixSpectrum

FIT_COLUMNS = [f.name for f in SCHEMAS["fits"] if f.name not in ("run", "step", "tensor", "target")]


class StepRows:
    """Accumulates one step's rows, then builds its Arrow tables."""

    def __init__(self, run: str, step: int) -> None:
        self.run, self.step = run, step
        self.layers: list[dict] = []
        self.spectra: list[tuple[str, str, np.ndarray]] = []
        self.vectors: list[tuple[str, str, int, float, np.ndarray, np.ndarray]] = []
        self.fits: list[dict] = []
        self.hist: list[tuple[str, str, np.ndarray, np.ndarray, np.ndarray]] = []
        self.measures: list[dict] = []

    def add(self, role: TensorRole, target: str, shape: tuple[int, ...], result: MatrixSpectrum, dtype: str) -> None:
        self.layers.append(
            {
                "tensor": role.name,
                "layer": role.layer,
                "module": role.module,
                "rows": shape[0],
                "cols": shape[1],
                "target": target,
                **asdict(result.stats),
                "kind": role.kind,
                "dtype": dtype,
                "expert": role.expert,
            }
        )
        self.spectra.append((role.name, target, result.sv.numpy()))
        if result.triplets is not None:
            t = result.triplets
            u, v, sigma = t.u.T.numpy(), t.v.T.numpy(), t.sigma.numpy()
            for k in range(sigma.size):
                self.vectors.append((role.name, target, k + 1, float(sigma[k]), u[k], v[k]))

    def add_measures(self, role: TensorRole, shape: tuple[int, ...], m: UpdateGeometry, dtype: str) -> None:
        """The update's geometry against the base (`update_geometry`)."""
        row = {"tensor": role.name, "layer": role.layer, "module": role.module, "expert": role.expert,
               "rows": shape[0], "cols": shape[1], "dtype": dtype, "unchanged_share": m.unchanged_share,
               "numerical_rank": m.numerical_rank, "numerical_rank_share": m.numerical_rank_share,
               "drift_all": m.drift_all, "value_share": m.value_share, "changed_sample": m.changed_sample}  # fmt: skip
        row |= dict(zip(("within_e8", "within_e6", "within_e5", "within_e4"), m.within_share))
        for k, ru, rv, d, o in zip(KS, m.rotation_u, m.rotation_v, m.drift_top, m.off_principal):
            row |= {f"rotation_u_k{k}": ru, f"rotation_v_k{k}": rv, f"drift_k{k}": d, f"off_principal_k{k}": o}
        self.measures.append(row)

    def add_fit(
        self, tensor: str, target: str, fit: PowerLawFit, hist: tuple[np.ndarray, np.ndarray, np.ndarray]
    ) -> None:
        values = {name: getattr(fit, name) for name in FIT_COLUMNS}
        self.fits.append({"tensor": tensor, "target": target, **values})
        self.hist.append((tensor, target, *hist))

    def tables(self) -> dict[str, pa.Table]:
        out = {
            "layers": self._from_rows(self.layers, "layers"),
            "spectra": self._table(
                "spectra",
                tensor=[s[0] for s in self.spectra],
                target=[s[1] for s in self.spectra],
                sv=list_column([s[2] for s in self.spectra], pa.float64()),
            ),
            "vectors": self._table(
                "vectors",
                tensor=[v[0] for v in self.vectors],
                k=[v[2] for v in self.vectors],
                sigma=[v[3] for v in self.vectors],
                u=list_column([v[4] for v in self.vectors], pa.float32()),
                v=list_column([v[5] for v in self.vectors], pa.float32()),
                target=[v[1] for v in self.vectors],
            ),
        }
        if self.measures:
            out["update_geometry"] = self._from_rows(self.measures, "update_geometry")
        if self.fits:
            out["fits"] = self._from_rows(self.fits, "fits")
            n = [h[2].size for h in self.hist]
            out["esd_hist"] = self._table(
                "esd_hist",
                tensor=[h[0] for h, c in zip(self.hist, n) for _ in range(c)],
                target=[h[1] for h, c in zip(self.hist, n) for _ in range(c)],
                bin_lo=_concat([h[2] for h in self.hist]),
                bin_hi=_concat([h[3] for h in self.hist]),
                density=_concat([h[4] for h in self.hist]),
            )
        return out

    def _from_rows(self, rows: list[dict], name: str) -> pa.Table:
        return pa.Table.from_pylist([{"run": self.run, "step": self.step, **row} for row in rows], schema=SCHEMAS[name])

    def _table(self, name: str, **columns) -> pa.Table:
        n = len(next(iter(columns.values())))
        return (
            pa.table({"run": [self.run] * n, "step": [self.step] * n, **columns})
            .select([f.name for f in SCHEMAS[name]])
            .cast(SCHEMAS[name])
        )


def _concat(arrays: list[np.ndarray]) -> np.ndarray:
    return np.concatenate(arrays) if arrays else np.zeros(0)
