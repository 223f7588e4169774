"""Who is looking and what they may do: the dashboard's side of the deployment settings
(`rlvr_core.system.settings`). Streamlit only; the rules themselves live in rlvr_core (`service.dataroots`,
`system.settings`).

- `signed_in()` / `login_page()`: app.py gives an anonymous visitor (auth on) a navigation holding only the
  login page: with `auth.mode = "oidc"` a login button (Streamlit's `st.login`), with `"header"` a note that
  the lab's proxy must sign them in. No other page can be reached, by the menu or by URL.
- `account_menu()`: with OIDC, the signed-in user and "Log out" in the sidebar of every page.
- `user()`: the signed-in user's name (OIDC e-mail or name, the proxy's header), recorded on jobs.
- `can_submit()`: False in read-only mode; pages then hide their forms.
- `allowed(path)`: the path when it lies under the data roots, else an error on the page and None.
- `model(text)`: a model field: a Hub id where allowed, else `allowed`.
- `runs_under_roots()`: the run folders found under the data roots (for a picker).
"""

from pathlib import Path

import streamlit as st

from rlvr_core.errors import RlvrError
from rlvr_core.readers.hub import is_hub_id
from rlvr_core.service.dataroots import allowed_path, find_runs
from rlvr_core.system.settings import Settings, load_settings

from .text import escape as _escape


def settings() -> Settings:
    """The deployment's settings ($RLVR_CONFIG and the environment), read at each call."""
    return load_settings()


def settings_problem() -> str | None:
    """The one-line error of settings that cannot be used (a bad $RLVR_CONFIG, a blank data root), else None.
    app.py shows it instead of any page: a deployment whose settings fail shows nothing else."""
    try:
        load_settings()
    except RlvrError as error:
        return str(error)
    return None


def signed_in() -> bool:
    """True when the visitor may see the dashboard (always, without auth)."""
    auth = settings().auth
    if auth.mode == "oidc":
        return bool(st.user.get("is_logged_in", False))
    if auth.mode == "header":
        return bool(st.context.headers.get(auth.header))
    return True


def login_page() -> None:
    """The only page an anonymous visitor gets when auth is on."""
    auth = settings().auth
    st.title("RLVR Lens")
    if auth.mode == "oidc":
        st.info("This dashboard is shared by a lab: log in to see its runs.")
        st.button("Log in", on_click=st.login, type="primary")
    else:
        st.error(
            f"Not signed in: this server expects the lab's sign-in proxy to identify you "
            f"(header {auth.header}). Open the dashboard through the proxy's address."
        )


def account_menu() -> None:
    """In the sidebar of every page, with OIDC: who is signed in, and a "Log out" button (`st.logout`)."""
    if settings().auth.mode != "oidc" or not st.user.get("is_logged_in", False):
        return
    st.sidebar.caption(f"Signed in as {_escape(user())}")
    st.sidebar.button("Log out", on_click=st.logout)


def user() -> str | None:
    """The signed-in user, or None without auth (jobs then record the OS user of the server)."""
    auth = settings().auth
    if auth.mode == "oidc" and st.user.get("is_logged_in", False):
        return str(st.user.get("email") or st.user.get("name") or "oidc-user")
    if auth.mode == "header":
        return st.context.headers.get(auth.header)
    return None


def can_submit() -> bool:
    return not settings().read_only


def allowed(path: str, what: str, kind: str = "folder", must_exist: bool = True) -> Path | None:
    """`path` (a `kind`: folder or file) resolved under the data roots, or None after showing why it is
    refused. Pages pass the resolved path on to jobs: what the job opens is what was checked."""
    try:
        return allowed_path(path, settings().roots, kind, must_exist)
    except RlvrError as error:
        st.error(f"{what}: {_escape(error)}")
        return None


def model(text: str, what: str) -> str | None:
    """A model field: a Hub id (`org/name[@rev]`) passed on as it is, where the settings allow ids (always
    without data roots, else `allow_hub`), or a folder checked by `allowed`; None after showing why not."""
    if is_hub_id(text, settings().roots):
        if settings().roots and not settings().allow_hub:
            st.error(f"{what}: Hub ids are not allowed on this server (allow_hub); give a folder under the data roots.")
            return None
        return text
    path = allowed(text, what)
    return str(path) if path else None


def runs_under_roots() -> list[str]:
    """The run folders found under the data roots (none without roots)."""
    roots = settings().roots
    return [str(p) for p in find_runs(roots)] if roots else []
