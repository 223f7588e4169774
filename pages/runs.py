"""Runs page: every cached run with its analysed checkpoints."""

import streamlit as st

from rlvr_core.store import open_cache, resolve_cache

st.title("Runs")
cache = resolve_cache(None)
checkpoints = open_cache(cache).execute(
    "SELECT run, step, is_base, n_analyzed AS tensors, device, round(seconds, 1) AS seconds, analyzed_at, path "
    "FROM checkpoints ORDER BY run, step").df()
if checkpoints.empty:
    st.info(f"No runs in the cache `{cache}` yet. Analyse one with "
            "`rlvr analyze RUN_DIR --base BASE_DIR` (the built-in demo arrives with `rlvr demo`).")
else:
    st.dataframe(checkpoints, hide_index=True, width="stretch")
