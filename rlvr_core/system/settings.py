"""Settings: a TOML file (`--config FILE` on any `rlvr` command, or $RLVR_CONFIG) with environment
overrides, resolved once and the same way for every entry point (`rlvr` commands, `streamlit run app.py`,
`rlvr serve`, the workers). Precedence: command-line flags > environment > the config file > a defaults
file ($RLVR_DEFAULTS: the Docker image's, so an admin's config file beats the image) > built-in defaults.
Every key is documented on its field below; docs/how-to/lab-server.md shows a complete file and
docs/reference/settings.md (generated from this module) lists every key.

    cache = "/data/cache"
    data_roots = ["/models", "/opt/rlvr/demo"]
    read_only = false
    demo = "auto"
    demo_cache = "/opt/rlvr/demo/cache"
    [auth]
    mode = "header"
    header = "X-Forwarded-User"
    [server]
    port = 8501
    address = "0.0.0.0"
    workers = "auto"
    worker_nice = 10

Nothing here imports torch or streamlit: both the dashboard and `rlvr serve` read it. May import:
`rlvr_core.errors` only.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

from ..errors import ConfigError
from .files import read_regular

CONFIG_ENV = "RLVR_CONFIG"
DEFAULTS_ENV = "RLVR_DEFAULTS"
"""A TOML file of defaults below the config file (the Docker image sets its defaults this way, so an
admin's config file beats them; an explicit environment variable beats both)."""
CACHE_ENV = "RLVR_CACHE"
DEFAULT_CACHE = "cache"
AUTH_MODES = ("none", "oidc", "header")


@dataclass(frozen=True, kw_only=True)
class AuthSettings:
    """Who may see the dashboard. With a mode other than `none`, anonymous visitors see only a login."""

    mode: str = "none"
    """`none` (anyone who reaches the port), `oidc` (Streamlit's `st.login` with the `[auth]` section of
    `secrets_file`), or `header` (a reverse proxy that authenticates users sets `header`). Env RLVR_AUTH."""
    header: str = "X-Forwarded-User"
    """`header` mode: the request header holding the user name, set by the proxy (which must strip it from
    clients' own requests). Env RLVR_AUTH_HEADER."""
    secrets_file: str = ""
    """`oidc` mode: a Streamlit secrets TOML with the `[auth]` section (redirect_uri, cookie_secret,
    client_id, client_secret, server_metadata_url); passed to Streamlit as `secrets.files`. Env RLVR_AUTH_SECRETS."""


@dataclass(frozen=True, kw_only=True)
class ServerSettings:
    """How `rlvr serve` listens and how many workers it runs."""

    port: int = 8501
    """The dashboard's port. Env RLVR_PORT."""
    address: str = "localhost"
    """The address the dashboard binds (`0.0.0.0`: every interface, as in Docker). Env RLVR_ADDRESS."""
    workers: str = "auto"
    """`auto` (one worker per visible GPU, else one CPU worker), or a number (0: no worker). Env RLVR_WORKERS."""
    worker_nice: int = 10
    """How many steps lower the CPU priority of the workers, their jobs and the watcher is than the
    dashboard's (0-19; 0: the same), so pages stay quick while analyses run. Env RLVR_WORKER_NICE."""
    worker_threads: int = 0
    """The CPU threads each worker's jobs may use (OMP/MKL/OpenBLAS counts; 0: the cores this service may
    use, shared among its CPU workers). Env RLVR_WORKER_THREADS."""


@dataclass(frozen=True, kw_only=True)
class Settings:
    """One deployment's settings."""

    cache: str = DEFAULT_CACHE
    """The cache folder (Parquet results, job queue, variants). Env RLVR_CACHE."""
    data_roots: tuple[str, ...] = ()
    """Folders where runs, base models and logs may be read; empty: anywhere (a laptop). The dashboard
    refuses paths outside them, through `..` or a symlink. Env RLVR_DATA_ROOTS (separated by ':')."""
    read_only: bool = False
    """View only: the dashboard queues no jobs and `rlvr serve` starts no worker. Env RLVR_READ_ONLY (1/0)."""
    demo: str = "auto"
    """`auto`: on an empty cache `rlvr serve` copies `demo_cache` in when set, else queues the demo build
    (shown with its progress on the Runs page); `off`: never. Env RLVR_DEMO."""
    demo_cache: str = ""
    """A prebuilt demo cache (the Docker image has one) to copy from. Env RLVR_DEMO_CACHE."""
    admins: tuple[str, ...] = ()
    """Signed-in users who may cancel anyone's job (everyone else cancels only their own). Env RLVR_ADMINS
    (separated by ',')."""
    max_queued_per_user: int = 20
    """Jobs one user may have queued or running at once (0: no limit), so one user cannot starve the
    others. Env RLVR_MAX_QUEUED."""
    allow_hub: bool = False
    """With data roots set: whether Hugging Face Hub ids (`org/name[@rev]`) may name models too (they are
    always allowed without data roots). Env RLVR_ALLOW_HUB (1/0)."""
    hub_cache: str = ""
    """Where Hub models are found and downloaded (a Hugging Face cache folder; empty: huggingface_hub's own,
    `$HF_HUB_CACHE` or `$HF_HOME/hub`). With data roots it is read like one. Env RLVR_HUB_CACHE."""
    auth: AuthSettings = field(default_factory=AuthSettings)
    """The `[auth]` section: who may see the dashboard."""
    server: ServerSettings = field(default_factory=ServerSettings)
    """The `[server]` section: how `rlvr serve` listens and how many workers it runs."""

    @property
    def roots(self) -> list[Path]:
        return [Path(r) for r in self.data_roots]


_ENV = {  # env var -> (section or "", key)
    CACHE_ENV: ("", "cache"),
    "RLVR_DATA_ROOTS": ("", "data_roots"),
    "RLVR_READ_ONLY": ("", "read_only"),
    "RLVR_DEMO": ("", "demo"),
    "RLVR_DEMO_CACHE": ("", "demo_cache"),
    "RLVR_ADMINS": ("", "admins"),
    "RLVR_MAX_QUEUED": ("", "max_queued_per_user"),
    "RLVR_ALLOW_HUB": ("", "allow_hub"),
    "RLVR_HUB_CACHE": ("", "hub_cache"),
    "RLVR_AUTH": ("auth", "mode"),
    "RLVR_AUTH_HEADER": ("auth", "header"),
    "RLVR_AUTH_SECRETS": ("auth", "secrets_file"),
    "RLVR_PORT": ("server", "port"),
    "RLVR_ADDRESS": ("server", "address"),
    "RLVR_WORKERS": ("server", "workers"),
    "RLVR_WORKER_NICE": ("server", "worker_nice"),
    "RLVR_WORKER_THREADS": ("server", "worker_threads"),
}
_SECTIONS = {"": Settings, "auth": AuthSettings, "server": ServerSettings}


def load_settings(
    path: str | Path | None = None, environ: Mapping[str, str] | None = None, flags: Mapping[str, object] | None = None
) -> Settings:
    """Settings from the TOML file at `path` (else $RLVR_CONFIG, else none), overridden by the environment,
    then by `flags` (command-line values by key, e.g. {"cache": "/tmp/c"}; None values are ignored;
    `server.port` style keys for sections)."""
    environ = os.environ if environ is None else environ
    path = path or environ.get(CONFIG_ENV)
    values: dict[str, dict] = {"": {}, "auth": {}, "server": {}}
    for layer, variable in ((environ.get(DEFAULTS_ENV), DEFAULTS_ENV), (path, CONFIG_ENV)):
        if layer:
            raw = _read_toml(layer, variable)
            for section in ("auth", "server"):
                part = raw.pop(section, {})
                if not isinstance(part, dict):
                    raise ConfigError(
                        f"{layer}: {section}",
                        f"a [{section}] table",
                        repr(part),
                        f"write the keys under a [{section}] line",
                    )
                values[section].update(part)
            values[""].update(raw)
    for var, (section, key) in _ENV.items():
        if var in environ:
            values[section][key] = _from_env(var, key, environ[var])
    for name, value in (flags or {}).items():
        if value is not None:
            section, _, key = name.rpartition(".")
            values[section][key] = value
    parts = {
        section: _build(_SECTIONS[section], values[section], str(path or "environment"), section)
        for section in ("auth", "server")
    }
    return replace(_build(Settings, values[""], str(path or "environment"), ""), **parts)


def _read_toml(path: str | Path, variable: str) -> dict:
    try:
        return tomllib.loads(read_regular(path, ConfigError).decode("utf-8"))
    except UnicodeDecodeError as error:
        raise ConfigError(
            str(path), "a UTF-8 TOML settings file", f"a byte that is not UTF-8 at offset {error.start}",
            "save the file as UTF-8",
        ) from None  # fmt: skip
    except FileNotFoundError:
        raise ConfigError(
            str(path),
            "a TOML settings file",
            "no such file",
            f"create it (see docs/how-to/lab-server.md) or unset ${variable}",
        ) from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(str(path), "valid TOML", str(error), "fix the syntax at that line") from None


def _from_env(var: str, key: str, text: str):
    if key == "data_roots":
        return text.split(os.pathsep)  # blank entries are refused by `_check`: roots fail closed
    if key == "admins":
        return [p.strip() for p in text.split(",") if p.strip()]
    if key in ("read_only", "allow_hub"):
        if text.lower() not in ("1", "0", "true", "false", "yes", "no", ""):
            raise ConfigError(f"${var}", "1 or 0", repr(text), f"set {var}=1 to turn it on, 0 otherwise")
        return text.lower() in ("1", "true", "yes")
    if key in ("port", "max_queued_per_user", "worker_nice", "worker_threads"):
        if not text.isdigit():
            raise ConfigError(f"${var}", "a whole number", repr(text), f"set for example {var}=8501")
        return int(text)
    return text


def _build(cls, values: dict, source: str, section: str):
    known = {f.name: f for f in fields(cls) if f.name not in _SECTIONS}
    where = f"[{section}] " if section else ""
    clean = {}
    for key, value in values.items():
        if key not in known:
            raise ConfigError(
                f"{source}: {where}{key}",
                f"one of {', '.join(known)}",
                f"unknown key '{key}'",
                "check the spelling against docs/reference/settings.md",
            )
        default = known[key].default
        expected = list if isinstance(default, tuple) else type(default)
        if key == "workers" and isinstance(value, int):
            value = str(value)
        if not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
            raise ConfigError(
                f"{source}: {where}{key}",
                f"a {expected.__name__}",
                f"{value!r}",
                f"write for example {key} = {default!r}"
                if key != "data_roots"
                else 'write for example data_roots = ["/models"]',
            )
        clean[key] = tuple(str(v) for v in value) if isinstance(value, list) else value
    result = cls(**clean)
    _check(result, source, where)
    return result


def _check(result, source: str, where: str) -> None:
    if isinstance(result, AuthSettings) and result.mode not in AUTH_MODES:
        raise ConfigError(
            f"{source}: {where}mode",
            f"one of {', '.join(AUTH_MODES)}",
            repr(result.mode),
            'write mode = "none", "oidc" or "header"',
        )
    if isinstance(result, AuthSettings) and result.mode == "oidc" and not result.secrets_file:
        raise ConfigError(
            f"{source}: {where}secrets_file",
            'a Streamlit secrets file with an [auth] section for mode = "oidc"',
            "none",
            "set secrets_file (or $RLVR_AUTH_SECRETS); see docs/how-to/oidc.md",
        )
    if isinstance(result, Settings):
        _check_roots(result.data_roots, source, where)
        if result.max_queued_per_user < 0:
            raise ConfigError(
                f"{source}: {where}max_queued_per_user", "0 (no limit) or a positive number of jobs",
                repr(result.max_queued_per_user), "write for example max_queued_per_user = 20",
            )  # fmt: skip
    if isinstance(result, ServerSettings) and not 0 <= result.worker_nice <= 19:
        raise ConfigError(
            f"{source}: {where}worker_nice", "0 to 19 (steps below the dashboard's CPU priority)",
            repr(result.worker_nice), "write for example worker_nice = 10 (0: the same priority)",
        )  # fmt: skip
    if isinstance(result, ServerSettings) and result.worker_threads < 0:
        raise ConfigError(
            f"{source}: {where}worker_threads", "0 (the cores shared among the workers) or more",
            repr(result.worker_threads), "write for example worker_threads = 2",
        )  # fmt: skip
    if isinstance(result, AuthSettings) and (not result.header.strip() or any(c in result.header for c in ":\r\n ")):
        raise ConfigError(
            f"{source}: {where}header", "the name of an HTTP request header", repr(result.header),
            'write for example header = "X-Forwarded-User"',
        )  # fmt: skip
    if isinstance(result, ServerSettings) and not 1 <= result.port <= 65535:
        raise ConfigError(
            f"{source}: {where}port", "a TCP port from 1 to 65535", repr(result.port), "write for example port = 8501"
        )
    if isinstance(result, ServerSettings) and result.workers != "auto" and not result.workers.isdigit():
        raise ConfigError(
            f"{source}: {where}workers",
            '"auto" or a number of workers',
            repr(result.workers),
            'write workers = "auto" or workers = 2',
        )
    if isinstance(result, Settings) and result.demo not in ("auto", "off"):
        raise ConfigError(f"{source}: demo", '"auto" or "off"', repr(result.demo), 'write demo = "auto" or "off"')


def _check_roots(roots: tuple[str, ...], source: str, where: str) -> None:
    """Data roots fail closed: every root must be an absolute folder path. A blank entry (`""`, or an empty
    item of $RLVR_DATA_ROOTS such as `"::"`) or a relative one (which would make the server's working folder
    a root) is a config error, never "no restriction" (which only leaving the key out means)."""
    for root in roots:
        if not root.strip() or not os.path.isabs(os.path.expanduser(root)):
            raise ConfigError(
                f"{source}: {where}data_roots", "absolute folder paths (leave the key out to allow any path)",
                f"{root!r} in {list(roots)!r}", 'write for example data_roots = ["/models"]',
            )  # fmt: skip
