"""RLVR Lens dashboard: `streamlit run app.py` (cache and settings as every entry point resolves them:
$RLVR_CACHE, else the `cache` of the settings file $RLVR_CONFIG, else ./cache; see rlvr_core.system.settings).

Thin by design: the pages (package `rlvr_dashboard`, files in `rlvr_dashboard/views/`) ask the cache's named
queries and draw with plotly. No math here, and this process never imports torch. With auth configured,
an anonymous visitor's navigation holds only the login page, so no other page can be reached.

The pages live in `views/`, not `pages/`: with a `pages/` folder next to this file Streamlit also runs its
files directly (its older multipage mode) when a session starts on a deep link such as `/jobs`, skipping
this script and its sign-in check.
"""

from pathlib import Path

import streamlit as st

from rlvr_dashboard import access
from rlvr_dashboard.guide import PAGES

VIEWS = Path(__file__).resolve().parent / "rlvr_dashboard" / "views"

st.set_page_config(page_title="RLVR Lens", layout="wide")
problem = access.settings_problem()
if problem:  # settings fail closed: every page shows this one notice and nothing else
    st.error(f"This dashboard's settings cannot be used, so it shows nothing. {problem}")
    st.stop()
if access.signed_in():
    navigation = st.navigation(
        [st.Page(VIEWS / f"{name}.py", title=title, default=name == "runs") for name, title, _ in PAGES]
    )
    access.account_menu()
else:
    navigation = st.navigation([st.Page(access.login_page, title="Sign in", url_path="login")], position="hidden")
navigation.run()
