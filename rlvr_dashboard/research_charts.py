"""Figures of the research pages: `rlvr_core.report.research_figures` and `claims_figures`, re-exported."""

from rlvr_core.report.claims_figures import claims_figure
from rlvr_core.report.research_figures import (
    cosine_figure,
    gaps_caption,
    metric_scatter,
    prediction_figure,
    runs_overlay,
    with_chance_band,
    with_gaps,
)

__all__ = [
    "claims_figure",
    "cosine_figure",
    "gaps_caption",
    "metric_scatter",
    "prediction_figure",
    "runs_overlay",
    "with_chance_band",
    "with_gaps",
]
