#!/usr/bin/env bash
# Install what Assay needs, skipping whatever is already there:
#   - Debian packages (as root; otherwise print the apt-get line to run),
#   - .venv with the Python dependencies, re-installed only when pyproject.toml changed.
set -euo pipefail
cd "$(dirname "$0")/.."

# Every Debian package Assay uses, in one place.
SERVICES=(redis-server clamav clamav-daemon postgresql)
BROWSER=(chromium)
# Tools the scanner calls to open archives, file-system images and firmware.
SCANNER=(
  libarchive-tools 7zip yara file unzip cpio xz-utils zstd lz4 lzop
  squashfs-tools mtd-utils e2fsprogs genisoimage qemu-utils
  android-sdk-libsparse-utils u-boot-tools srecord binutils hfsutils erofs-utils
)
# Tools the tests use to build real file-system images, firmware and raw-tool baselines.
TESTING=(
  dosfstools mtools genromfs wimtools device-tree-compiler util-linux gcc clamdscan
  db5.3-util rpm unyaffs
)
PYTHON=(python3 python3-venv python3-dev build-essential)
PACKAGES=("${SERVICES[@]}" "${BROWSER[@]}" "${SCANNER[@]}" "${TESTING[@]}" "${PYTHON[@]}")

missing=()
for pkg in "${PACKAGES[@]}"; do
  status=$(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null || true)
  [ "$status" = installed ] || missing+=("$pkg")
done

if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -eq 0 ]; then
    echo "Installing Debian packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    apt-get install -y -q --no-install-recommends "${missing[@]}"
  else
    echo "Missing Debian packages: ${missing[*]}" >&2
    echo "Install them as root:" >&2
    echo "  sudo apt-get update && sudo apt-get install -y ${missing[*]}" >&2
    exit 1
  fi
fi

# The Debian clamav-daemon and redis-server packages start system-wide
# services; Assay runs its own on its own ports and data, so they are not needed.

VENV=.venv
STAMP=$VENV/.installed-pyproject
if [ ! -x "$VENV/bin/python" ]; then
  echo "Creating $VENV"
  python3 -m venv "$VENV"
fi
if [ ! -f "$STAMP" ] || ! cmp -s pyproject.toml "$STAMP"; then
  echo "Installing Python dependencies into $VENV"
  # Playwright drives Debian's chromium: never let it fetch a browser of its own.
  export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1
  "$VENV/bin/python" -m pip install -q --upgrade pip
  "$VENV/bin/python" -m pip install -q -e '.[test]'
  cp pyproject.toml "$STAMP"
fi
