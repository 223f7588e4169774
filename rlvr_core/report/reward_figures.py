"""The Reward vs test figure: training reward above, held-out and training-pool accuracy below, on one step
axis (`two_panels`), as the Reward vs test page, `rlvr figure --kind reward-vs-test` and `rlvr report` draw
it. Twin y-axes on one plot were dropped: with two independently scaled axes any two rising curves look
correlated by construction (second dashboard tour, issue 31)."""

from __future__ import annotations

import plotly.graph_objects as go

from .figures import PALETTE, steps_axis


def two_panels(top: str, bottom: str, title: str | None = None) -> go.Figure:
    """Two panels over one shared step axis, each with its own y-axis and title: for two quantities on
    different scales (training reward above, held-out and pool accuracy below) instead of twin y-axes on one
    plot, which make any two curves look correlated by the choice of their ranges."""
    from plotly.subplots import make_subplots

    figure = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.1, subplot_titles=(top, bottom))
    figure.update_layout(title=title, height=560)
    figure.update_yaxes(title_text=top.split(" (")[0], tickformat=".2f", row=1, col=1)  # the panel title says more
    figure.update_yaxes(title_text=bottom.split(";")[0], tickformat=".2f", row=2, col=1)
    return figure.update_xaxes(title_text="step", row=2, col=1)


def reward_test_figure(series, evals, window: int) -> go.Figure:
    """The Reward vs test chart (`two_panels`): each run's training reward (rolling mean over `window` logged
    steps) above; below, on one axis, its held-out score (solid), its accuracy on the training pool (dotted,
    where logged: the finite-pool overfitting gap is the distance between the two) and the tool's own
    evaluations with their 95% Wilson intervals. `series`: `Queries.reward_and_test`; `evals`:
    `with_intervals(Queries.evaluations(...))`, possibly empty."""
    figure = two_panels(f"training reward (mean of {window})", "held-out score; accuracy on the training pool")
    for i, (run, frame) in enumerate(series.groupby("run")):
        color = PALETTE[i % len(PALETTE)]
        reward = frame[frame["name"] == frame["reward_metric"]]
        figure.add_scatter(
            x=reward["step"], y=reward["value"].rolling(window, min_periods=1).mean(), name=f"{run}: reward",
            mode="lines", line={"color": color}, row=1, col=1,
        )  # fmt: skip
        for kind, dash in (("test_metric", "solid"), ("pool_metric", "dot")):
            logged = frame[frame["name"] == frame[kind]]
            if not logged.empty:
                figure.add_scatter(
                    x=logged["step"], y=logged["value"], name=f"{run}: {logged['name'].iloc[0]} (logged)",
                    mode="lines+markers", line={"color": color, "dash": dash}, row=2, col=1,
                )  # fmt: skip
    for (run, variant, dataset), frame in evals.groupby(["run", "variant", "dataset"]):
        figure.add_scatter(
            x=frame["step"], y=frame["accuracy"], mode="markers", marker_symbol="diamond",
            error_y={"type": "data", "array": frame["error_plus"], "arrayminus": frame["error_minus"]},
            name=f"{run}: {variant} on {dataset} (evaluated, 95% Wilson)", row=2, col=1,
        )  # fmt: skip
    return steps_axis(figure, series["step"]).update_xaxes(title_text=None, row=1, col=1)  # one "step", at the bottom
