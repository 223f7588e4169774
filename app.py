"""RLVR Lens dashboard: `streamlit run app.py` (cache from $RLVR_CACHE, else ./cache; settings from
$RLVR_CONFIG and the environment, see rlvr_core.settings).

Thin by design: pages query the cache through `rlvr_core.store` (DuckDB over Parquet) and draw with
plotly. No math here, and this process never imports torch. With auth configured, an anonymous visitor's
navigation holds only the login page, so no other page can be reached.

The pages live in `views/`, not `pages/`: with a `pages/` folder next to this file Streamlit also runs its
files directly (its older multipage mode) when a session starts on a deep link such as `/jobs`, skipping
this script and its sign-in check.
"""

import streamlit as st

import access

st.set_page_config(page_title="RLVR Lens", layout="wide")
if access.signed_in():
    navigation = st.navigation([
        st.Page("views/runs.py", title="Runs", default=True),
        st.Page("views/layers.py", title="Layers"),
        st.Page("views/spectra.py", title="Spectra"),
        st.Page("views/alignment.py", title="Alignment"),
        st.Page("views/reward.py", title="Reward vs test"),
        st.Page("views/substitution.py", title="Substitution"),
        st.Page("views/jobs.py", title="Jobs"),
    ])
else:
    navigation = st.navigation([st.Page(access.login_page, title="Sign in", url_path="login")], position="hidden")
navigation.run()
