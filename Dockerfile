# RLVR Lens: the dashboard and its workers (`rlvr serve`), with the demo built in, installed from the wheel.
#   docker build -t rlvr-lens .                       (CPU wheel of torch)
#   docker build -t rlvr-lens:cuda --build-arg TORCH_INDEX=https://download.pytorch.org/whl/cu128 .
#   docker run -p 8501:8501 -v /path/to/runs:/models:ro -v rlvr-data:/data rlvr-lens    (add --gpus all for GPUs)
# Every RUN step but the image's own setup (Debian's chromium, the user) is a command `.ci/run` runs too
# (tests/test_dockerfile.py checks it).

# Stage 1: the wheel, built from the package sources only.
FROM python:3.11-slim AS wheel
WORKDIR /src
COPY pyproject.toml README.md ./
COPY rlvr_core rlvr_core
COPY rlvr_dashboard rlvr_dashboard
RUN pip wheel --no-cache-dir --no-deps -w dist .

# Stage 2: the image: the pinned set, then the wheel with its dashboard extra (no source tree in /app).
FROM python:3.11-slim

ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
# Where the demo is built (build time only).
ARG RLVR_DEMO_OUT=/opt/rlvr/demo
ARG RLVR_DEMO_CACHE=/opt/rlvr/demo/cache
# Settings defaults (cache /data/cache, data roots /models, /opt/rlvr/demo and /benchmarks, address 0.0.0.0)
# come from a defaults file, which an admin's config file (-e RLVR_CONFIG=...) overrides: baked-in RLVR_*
# environment variables would beat it. BROWSER_PATH: the Chromium kaleido drives for SVG/PDF export.
ENV PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    RLVR_DEFAULTS=/app/docker/defaults.toml \
    RLVR_DATA=/benchmarks \
    BROWSER_PATH=/usr/bin/chromium-headless-shell

WORKDIR /app
COPY requirements.txt ./
RUN PIP_EXTRA_INDEX_URL="$TORCH_INDEX" pip install --no-cache-dir -r requirements.txt
COPY docker/defaults.toml docker/
COPY --from=wheel /src/dist dist
RUN pip install --no-cache-dir "$(echo dist/rlvr_lens-*.whl)[dashboard]" -c requirements.txt
RUN rlvr demo --out "$RLVR_DEMO_OUT" --cache "$RLVR_DEMO_CACHE"
# Debian's headless Chromium (the headless shell: 206 MB installed, against 332 MB and a desktop's libraries
# for `chromium`) for figure export: the pages' "SVG / PDF" buttons and `rlvr figure` (kaleido drives it);
# the version is Debian's security-maintained one.
# hadolint ignore=DL3008
RUN apt-get update && apt-get install -y --no-install-recommends chromium-headless-shell && rm -rf /var/lib/apt/lists/*
# uid 1000; HOME under /tmp, so `docker run --read-only --tmpfs /tmp` leaves Streamlit and Chromium a
# writable home.
RUN useradd --create-home --uid 1000 rlvr && mkdir -p /data /models /benchmarks && chown rlvr /data

USER 1000
ENV HOME=/tmp/rlvr
VOLUME ["/data"]
EXPOSE 8501
# The check asks the port and address the settings give (RLVR_PORT, RLVR_ADDRESS, the config file), as `rlvr serve`.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s \
    CMD ["python", "-m", "rlvr_core.service.health"]
ENTRYPOINT ["rlvr", "serve"]
