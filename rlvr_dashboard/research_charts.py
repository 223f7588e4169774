"""Figures of the research pages: `rlvr_core.report.research_figures`, re-exported for the pages."""

from rlvr_core.report.research_figures import cosine_figure, metric_scatter, prediction_figure

__all__ = ["cosine_figure", "metric_scatter", "prediction_figure"]
