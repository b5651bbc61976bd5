#!/usr/bin/env bash
# Builds the FluxPay image without a Docker daemon: buildah (vfs storage, chroot isolation) on
# a Debian bookworm + Python 3.11 base made from Debian's packages by mmdebstrap. The base's
# root filesystem is cached in .cache/image/ (gitignored) and imported once into buildah's
# storage; `IMAGE`, `BASE_IMAGE` override the names.
set -euo pipefail
cd "$(dirname "$0")/../.."

IMAGE=${IMAGE:-localhost/fluxpay:latest}
BASE_IMAGE=${BASE_IMAGE:-localhost/fluxpay-base:bookworm-py311}
CACHE=.cache/image
BASE_TAR=$CACHE/bookworm-python3.11.tar
buildah() { command buildah --storage-driver vfs "$@"; }

make_base_rootfs() {
  mkdir -p "$CACHE"
  # minbase + the interpreter, its venv module (ensurepip) and CA certificates for PyPI.
  mmdebstrap --quiet --variant=minbase --format=tar \
    --include=python3.11,python3.11-venv,ca-certificates \
    --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-exclude=/usr/share/man/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' \
    --customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*' \
    bookworm "$BASE_TAR.partial"
  mv "$BASE_TAR.partial" "$BASE_TAR"
}

import_base() {
  local ctr
  ctr=$(buildah from scratch)
  buildah add "$ctr" "$BASE_TAR" / >/dev/null
  buildah config --env LANG=C.UTF-8 --cmd '["python3.11"]' "$ctr"
  buildah commit --quiet --rm "$ctr" "$BASE_IMAGE" >/dev/null
}

if ! buildah inspect --type image "$BASE_IMAGE" >/dev/null 2>&1; then
  [ -f "$BASE_TAR" ] || make_base_rootfs
  import_base
fi

# The package index as this machine's pip reaches it: its index URL when one is set (file://
# mirrors stay outside), and its CA bundle when pip is told to trust one (a TLS-inspecting
# proxy), mounted for the build's RUN steps only. buildah passes *_proxy variables itself.
pip_setting() { python3 -m pip config get "global.$1" 2>/dev/null || true; }
build_args=(--build-arg "BASE_IMAGE=$BASE_IMAGE")
index=${PIP_INDEX_URL:-$(pip_setting index-url)}
case "$index" in http*) build_args+=(--build-arg "PIP_INDEX_URL=$index") ;; esac
ca=${PIP_CERT:-$(pip_setting cert)}
if [ -n "$ca" ] && [ -f "$ca" ]; then
  build_args+=(--volume "$ca:/run/build-ca.crt:ro"
    --build-arg PIP_CERT=/run/build-ca.crt --build-arg SSL_CERT_FILE=/run/build-ca.crt)
fi

buildah bud --isolation chroot --pull-never --layers=false "${build_args[@]}" \
  -t "$IMAGE" -f Dockerfile .
# The image this one replaced (now untagged) would otherwise pile up in vfs storage.
buildah rmi --prune >/dev/null 2>&1 || true
echo "built $IMAGE"
