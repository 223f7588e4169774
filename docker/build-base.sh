#!/usr/bin/env bash
# A local stand-in for `python:3.11-slim` (Docker Hub is out of reach here), built from Debian packages:
# debootstrap bookworm (Python 3.11), pip and venv, `python`/`pip` on the PATH as in the official image,
# pip allowed to install system-wide (no EXTERNALLY-MANAGED marker, as the official image), and the CPU
# wheel of torch that this machine holds (/opt/wheels) as a pip find-links folder, since the PyTorch index
# is out of reach too, and the host's CA bundle (its TLS proxy to PyPI). The Dockerfile itself stays unchanged. Tagged python:3.11-slim; built once, reused.
set -euo pipefail
tag="${1:-python:3.11-slim}"
if docker image inspect "$tag" >/dev/null 2>&1; then
    echo "build-base: $tag exists"
    exit 0
fi
root="$(mktemp -d)"
trap 'rm -rf "$root"' EXIT
debootstrap --variant=minbase --include=python3,python3-pip,python3-venv,ca-certificates bookworm "$root" \
    http://deb.debian.org/debian >/dev/null
rm -f "$root"/usr/lib/python3.*/EXTERNALLY-MANAGED
ln -sf /usr/bin/python3 "$root/usr/local/bin/python"
ln -sf /usr/bin/pip3 "$root/usr/local/bin/pip"
mkdir -p "$root/opt/wheels"
cp /opt/wheels/torch-*+cpu-*.whl "$root/opt/wheels/" 2>/dev/null || true
# This machine reaches PyPI through a TLS proxy: the stand-in trusts what the host trusts; the PyTorch
# index the Dockerfile adds cannot be reached, so pip does not retry it.
cp /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/ca-certificates.crt"
printf '[global]\nfind-links = /opt/wheels\ncert = /etc/ssl/certs/ca-certificates.crt\nretries = 0\n' > "$root/etc/pip.conf"
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
tar -C "$root" -c . | docker import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' \
    --change 'CMD ["python3"]' - "$tag" >/dev/null
echo "build-base: $tag built ($(docker image inspect -f '{{.Size}}' "$tag") bytes)"
