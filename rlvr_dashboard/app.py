"""RLVR Lens dashboard: Streamlit's entry point, inside the installed package so that `rlvr serve` runs it from
a plain `pip install rlvr-lens[dashboard]` (`streamlit run app.py` at the top of a checkout runs the same
`main`). Cache and settings as every entry point resolves them: $RLVR_CACHE, else the `cache` of the
settings file $RLVR_CONFIG, else ./cache; see rlvr_core.system.settings.

Thin by design: the pages (files in `views/`) ask the cache's named queries and draw with plotly. No math
here, and this process never imports torch. With auth configured, an anonymous visitor's navigation holds
only the login page, so no other page can be reached.

The pages live in `views/`, not `pages/`: with a `pages/` folder next to the entry script Streamlit also runs
its files directly (its older multipage mode) when a session starts on a deep link such as `/jobs`,
skipping this script and its sign-in check. Pages are given by absolute path, so the navigation is the same
whichever script Streamlit was started on.
"""

import streamlit as st

from rlvr_dashboard import access
from rlvr_dashboard.guide import PAGES, page_file


def main() -> None:
    """One run of the dashboard: the settings check, then the navigation (the pages, or the sign-in)."""
    st.set_page_config(page_title="RLVR Lens", layout="wide")
    problem = access.settings_problem()
    if problem:  # settings fail closed: every page shows this one notice and nothing else
        st.error(f"This dashboard's settings cannot be used, so it shows nothing. {problem}")
        st.stop()
    if access.signed_in():
        pages = [st.Page(page_file(name), title=title, default=name == "runs") for name, title, _ in PAGES]
        navigation = st.navigation(pages)
        access.account_menu()
    else:
        login = st.Page(access.login_page, title="Sign in", url_path="login")
        navigation = st.navigation([login], position="hidden")
    navigation.run()


if __name__ == "__main__":  # Streamlit runs its entry script as __main__, once per rerun
    main()
