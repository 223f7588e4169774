"""RLVR Lens dashboard: `streamlit run app.py` (cache from $RLVR_CACHE, else ./cache).

Thin by design: pages query the cache through `rlvr_core.store` (DuckDB over Parquet) and draw with
plotly. No math here, and this process never imports torch.
"""

import streamlit as st

st.set_page_config(page_title="RLVR Lens", layout="wide")
navigation = st.navigation([
    st.Page("pages/runs.py", title="Runs", default=True),
    st.Page("pages/layers.py", title="Layers"),
    st.Page("pages/spectra.py", title="Spectra"),
    st.Page("pages/alignment.py", title="Alignment"),
    st.Page("pages/reward.py", title="Reward vs test"),
    st.Page("pages/substitution.py", title="Substitution"),
    st.Page("pages/jobs.py", title="Jobs"),
])
navigation.run()
