"""`python -m rlvr_core.service.health`: is this deployment's dashboard answering? The Docker image's
HEALTHCHECK runs it, so the check asks the port and address the settings give (the settings file, $RLVR_CONFIG,
$RLVR_PORT, $RLVR_ADDRESS: what `rlvr serve` listens on) instead of a fixed 8501, and says why when it fails
(Docker keeps the last lines in `docker inspect`). Exit 0: healthy; 1: not, with one line on stderr.
"""

from __future__ import annotations

import sys
import urllib.error
import urllib.request

from ..errors import RlvrError
from ..system.settings import Settings, load_settings

ANY_ADDRESS = {"", "0.0.0.0", "::", "localhost"}
"""Bind addresses the check reaches through the loopback interface."""


def health_url(settings: Settings) -> str:
    """Streamlit's health endpoint of the dashboard these settings start."""
    address = settings.server.address
    host = "127.0.0.1" if address in ANY_ADDRESS else (f"[{address}]" if ":" in address else address)
    return f"http://{host}:{settings.server.port}/_stcore/health"


def check(settings: Settings, timeout: float = 4.0) -> str | None:
    """None when the dashboard answers `ok`; otherwise why not, in one line."""
    url = health_url(settings)
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            body = response.read()
    except urllib.error.HTTPError as error:
        return f"unhealthy: {url} answered HTTP {error.code}"
    except (OSError, ValueError) as error:
        reason = getattr(error, "reason", error)
        return f"unhealthy: nothing answers at {url} ({reason}); is `rlvr serve` running with these settings?"
    return None if body == b"ok" else f"unhealthy: {url} answered {body[:40]!r}, not b'ok'"


def main() -> int:
    try:
        problem = check(load_settings())
    except RlvrError as error:
        problem = f"unhealthy: the settings cannot be read: {error}"
    if problem:
        print(problem, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
