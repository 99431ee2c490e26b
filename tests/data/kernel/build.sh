#!/bin/sh
# Builds bzImage: a tinyconfig x86-64 Linux kernel whose built-in initramfs (xz-compressed
# newc cpio) holds the EICAR test file and a PyYAML 5.3 dist-info, as a scanner test input.
#
# Needs Debian's linux-source (the tarball in /usr/src), gcc, make, flex, bison, bc,
# libelf-dev. Usage: tests/data/kernel/build.sh [WORKDIR]   (writes bzImage beside itself)
set -eu
here=$(cd "$(dirname "$0")" && pwd)
work=${1:-$(mktemp -d)}
tarball=$(ls /usr/src/linux-source-*.tar.xz | sort -V | tail -n 1)

mkdir -p "$work"
cd "$work"
[ -d linux ] || { mkdir linux && tar -xJf "$tarball" -C linux --strip-components=1; }

# The initramfs content. EICAR is written in two parts so that this script is not a virus hit.
root="$work/initramfs"
rm -rf "$root"
mkdir -p "$root/opt/app" "$root/usr/lib/python3/dist-packages/PyYAML-5.3.dist-info"
printf '%s%s' 'X5O!P%@AP[4\PZX54(P^)7CC)7}$' 'EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*' \
    > "$root/opt/app/eicar.com"
printf 'Metadata-Version: 2.1\nName: PyYAML\nVersion: 5.3\n' \
    > "$root/usr/lib/python3/dist-packages/PyYAML-5.3.dist-info/METADATA"

cd linux
make ARCH=x86_64 tinyconfig >/dev/null
scripts/config --enable BLK_DEV_INITRD --enable RD_XZ \
    --set-str INITRAMFS_SOURCE "$root" \
    --enable INITRAMFS_COMPRESSION_XZ \
    --disable RD_GZIP --disable RD_BZIP2 --disable RD_LZMA --disable RD_LZO \
    --disable RD_LZ4 --disable RD_ZSTD
make ARCH=x86_64 olddefconfig >/dev/null
make ARCH=x86_64 -j"$(nproc)" bzImage >/dev/null
cp arch/x86/boot/bzImage "$here/bzImage"
ls -l "$here/bzImage"
