"""Figures and reports: the plotly figure builders every chart uses (the dashboard's pages through
`rlvr_dashboard.charts`), a run's self-contained HTML report (`rlvr report`) and publication figures
(`rlvr figure`: SVG and PDF through kaleido and Debian's Chromium).

- `figures`: the chart rules (labels, bounds, module order, integer axes, intervals) and the builders.
- `research_figures`: prediction and metric-vs-accuracy figures.

May import: `rlvr_core.errors`, `rlvr_core.system`, `rlvr_core.math`, `rlvr_core.cache`; plotly. Never
torch, never Streamlit.
"""
