"""Dashboard widgets shared by the pages (streamlit only; no data access, no math).

`pick` is a selectbox whose choice also lives in the page's URL (`?run=...&step=...`), so a view on a lab
server can be shared by copying the address bar."""

import streamlit as st


def pick(label: str, options: list, key: str, default_index: int = 0, container=st):
    """A selectbox initialised from the URL query parameter `key` (when it names an option) that writes
    the chosen value back to the URL."""
    names = [str(o) for o in options]
    wanted = st.query_params.get(key)
    index = names.index(wanted) if wanted in names else min(default_index, max(len(options) - 1, 0))
    value = container.selectbox(label, options, index=index, key=f"url_{key}")
    if value is not None:
        st.query_params[key] = str(value)
    return value
