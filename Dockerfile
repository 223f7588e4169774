# RLVR Lens: the dashboard and its workers (`rlvr serve`), with the demo built in.
#   docker build -t rlvr-lens .                       (CPU wheel of torch)
#   docker build -t rlvr-lens:cuda --build-arg TORCH_INDEX=https://download.pytorch.org/whl/cu128 .
#   docker run -p 8501:8501 -v /path/to/runs:/models:ro -v rlvr-data:/data rlvr-lens    (add --gpus all for GPUs)
# Every RUN step but the user's creation is a command `.ci/run` runs too (tests/test_dockerfile.py checks it).
FROM python:3.11-slim

ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
# Where the demo is built (build time only).
ARG RLVR_DEMO_OUT=/opt/rlvr/demo
ARG RLVR_DEMO_CACHE=/opt/rlvr/demo/cache
# Settings defaults (cache /data/cache, data roots /models, /opt/rlvr/demo and /benchmarks, address 0.0.0.0)
# come from a defaults file, which an admin's config file (-e RLVR_CONFIG=...) overrides: baked-in RLVR_*
# environment variables would beat it.
ENV PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    RLVR_DEFAULTS=/app/docker/defaults.toml \
    RLVR_DATA=/benchmarks

WORKDIR /app
COPY requirements.txt ./
RUN PIP_EXTRA_INDEX_URL="$TORCH_INDEX" pip install --no-cache-dir -r requirements.txt
COPY . ./
RUN pip install --no-cache-dir --no-deps -e .
RUN rlvr demo --out "$RLVR_DEMO_OUT" --cache "$RLVR_DEMO_CACHE"
RUN useradd --create-home --uid 1000 rlvr && mkdir -p /data /models /benchmarks && chown rlvr /data

USER 1000
VOLUME ["/data"]
EXPOSE 8501
# The check asks the port and address the settings give (RLVR_PORT, RLVR_ADDRESS, the config file), as `rlvr serve`.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s \
    CMD ["python", "-m", "rlvr_core.service.health"]
ENTRYPOINT ["rlvr", "serve"]
