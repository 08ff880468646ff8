#!/usr/bin/env bash
# A Python 3.11 base image made from Debian's packages, for build hosts that cannot pull from a
# container registry: `make images-offline` passes it to the Dockerfiles as PYTHON_IMAGE.
# Needs root, mmdebstrap (Debian package) and a Docker engine. Usage: build-base-image.sh TAG
set -euo pipefail
tag=${1:?usage: build-base-image.sh TAG}
if docker image inspect "$tag" >/dev/null 2>&1; then
    echo "base image $tag exists"
    exit 0
fi
# The build host's CA bundle goes in, and pip is pointed at it: behind a TLS-inspecting proxy,
# pip inside `docker build` then reaches the package index as the host does.
host_ca=/etc/ssl/certs/ca-certificates.crt
rootfs=$(mktemp -d)
trap 'rm -rf "$rootfs"' EXIT
# To a file first: a failed mmdebstrap must not leave an empty image behind under $tag.
mmdebstrap --variant=minbase --quiet \
    --include=python3.11,python3.11-venv,ca-certificates,passwd \
    --customize-hook='chroot "$1" ln -sf /usr/bin/python3.11 /usr/local/bin/python' \
    --customize-hook='mkdir -p "$1/usr/local/share/ca-certificates-host"' \
    --customize-hook="copy-in $host_ca /usr/local/share/ca-certificates-host/" \
    --customize-hook='rm -rf "$1"/var/cache/apt/archives/*.deb "$1"/var/lib/apt/lists/*' \
    bookworm "$rootfs/rootfs.tar"
docker import \
    --change 'ENV PIP_CERT=/usr/local/share/ca-certificates-host/ca-certificates.crt' \
    --change 'ENV SSL_CERT_FILE=/usr/local/share/ca-certificates-host/ca-certificates.crt' \
    --change 'ENV LANG=C.UTF-8' \
    --change 'CMD ["python"]' \
    "$rootfs/rootfs.tar" "$tag"
echo "built base image $tag"
