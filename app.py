"""RLVR Lens dashboard: `streamlit run app.py` (cache from $RLVR_CACHE, else ./cache; settings from
$RLVR_CONFIG and the environment, see rlvr_core.settings).

Thin by design: pages query the cache through `rlvr_core.store` (DuckDB over Parquet) and draw with
plotly. No math here, and this process never imports torch. With auth configured, an anonymous visitor's
navigation holds only the login page, so no other page can be reached.
"""

import streamlit as st

import access

st.set_page_config(page_title="RLVR Lens", layout="wide")
if access.signed_in():
    navigation = st.navigation([
        st.Page("pages/runs.py", title="Runs", default=True),
        st.Page("pages/layers.py", title="Layers"),
        st.Page("pages/spectra.py", title="Spectra"),
        st.Page("pages/alignment.py", title="Alignment"),
        st.Page("pages/reward.py", title="Reward vs test"),
        st.Page("pages/substitution.py", title="Substitution"),
        st.Page("pages/jobs.py", title="Jobs"),
    ])
else:
    navigation = st.navigation([st.Page(access.login_page, title="Sign in", url_path="login")], position="hidden")
navigation.run()
