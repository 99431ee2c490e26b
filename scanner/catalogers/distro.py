"""Operating-system packages: dpkg, apk, rpm (sqlite, Berkeley DB, NDB) and opkg databases,
and the rpm manifest of CBL-Mariner / Azure Linux distroless images.

OSV's distribution advisories (DSA/DLA, Alpine secdb) name *source* packages, so
Debian and Alpine components are named by their source package (``Source:`` /
``o:``), falling back to the binary package's own name: the binaries built from
one source (libssl3, openssl, ...) become one component. RPM advisories name
binary packages, which is what rpm components keep.

Where the file-system root that holds the database also holds an os-release
file, Debian, Ubuntu and Alpine components carry the OSV ecosystem of that
release (``Debian:12``, ``Ubuntu:22.04``, ``Alpine:v3.19``): advisories for a
release know its back-ported fixes. Without one the bare ecosystem is used.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Iterable, Iterator
from pathlib import Path

from scanner.catalogers._common import component, each, inner, read_text, sqlite_rows, unread
from scanner.catalogers.rpm_ndb import is_ndb, ndb_blobs
from scanner.model import Component
from scanner.unpack import Member

_DPKG = ("var/lib/dpkg/status",)
_DPKG_DIR = "var/lib/dpkg/status.d/"
_APK = "lib/apk/db/installed"
_RPMDB = ("var/lib/rpm/rpmdb.sqlite", "usr/lib/sysimage/rpm/rpmdb.sqlite")
#: The Berkeley DB hash database of rpm before 4.16 (RHEL/CentOS 7 and 8, Amazon Linux 2)
_RPM_BDB = ("var/lib/rpm/Packages", "usr/lib/sysimage/rpm/Packages")
#: rpm's NDB database (SUSE and openSUSE images)
_RPM_NDB = ("var/lib/rpm/Packages.db", "usr/lib/sysimage/rpm/Packages.db")
#: ``rpm -qa`` output that Mariner / Azure Linux distroless images keep instead of a database
_RPM_MANIFEST = "var/lib/rpmmanifest/container-manifest-2"
#: OpenWrt's package database (firmware images and their root file systems)
_OPKG = ("usr/lib/opkg/status", "var/lib/opkg/status")
_OS_RELEASE = ("etc/os-release", "usr/lib/os-release")
_HEADER_MAX = 64 * 1024 * 1024

# rpm header tags and types
_NAME, _VERSION, _RELEASE, _EPOCH, _ARCH = 1000, 1001, 1002, 1003, 1022
_INT32, _STRING, _STRING_ARRAY, _I18NSTRING = 4, 6, 8, 9

#: rpm distributions known by the package that names the release, and their OSV ecosystem.
_RPM_DISTROS = (
    ("redhat-release", "Red Hat", "redhat"),
    ("rocky-release", "Rocky Linux", "rocky"),
    ("almalinux-release", "AlmaLinux", "almalinux"),
    ("openSUSE-release", "openSUSE", "opensuse"),
    ("sles-release", "SUSE", "suse"),
)


def paragraphs(text: str) -> Iterator[dict[str, str]]:
    """RFC 822-style stanzas separated by blank lines (continuation lines folded in)."""
    fields: dict[str, str] = {}
    key = None
    for line in text.splitlines():
        if not line.strip():
            if fields:
                yield fields
            fields, key = {}, None
        elif line[0] in " \t":
            if key:
                fields[key] += "\n" + line.strip()
        else:
            key, _, value = line.partition(":")
            key = key.strip()
            fields[key] = value.strip()
    if fields:
        yield fields


def release_ecosystem(base: str, os_id: str, version_id: str) -> str:
    """The OSV ecosystem of one release of a distribution, or ``base`` when it is unknown."""
    version_id = version_id.strip()
    if base == "Debian" and os_id == "debian" and re.fullmatch(r"\d+(\.\d+)*", version_id):
        return f"Debian:{version_id.split('.')[0]}"
    if base == "Ubuntu" and os_id == "ubuntu" and re.fullmatch(r"\d+\.\d+", version_id):
        return f"Ubuntu:{version_id}"
    minor = re.match(r"(\d+)\.(\d+)", version_id)
    if base == "Alpine" and os_id == "alpine" and minor:
        return f"Alpine:v{minor.group(1)}.{minor.group(2)}"
    return base


def _distro_qualifier(ecosystem: str) -> dict[str, str]:
    base, _, release = ecosystem.partition(":")
    return {"distro": f"{base.lower()}-{release.lstrip('v')}"} if release else {}


def dpkg_status(
    text: str, location: str, distro: str = "debian", version_id: str = ""
) -> list[Component]:
    base = "Ubuntu" if distro == "ubuntu" else "Debian"
    ecosystem = release_ecosystem(base, distro, version_id)
    found = []
    for p in paragraphs(text):
        status = p.get("Status", "install ok installed").split()
        if len(status) < 3 or status[2] != "installed" or not p.get("Package"):
            continue
        source = re.fullmatch(r"(\S+)(?:\s+\((\S+)\))?", p.get("Source", ""))
        name = source.group(1) if source else p["Package"]
        version = (source.group(2) if source and source.group(2) else None) or p.get("Version", "")
        if version:
            found.append(
                component(
                    ecosystem,
                    name,
                    version,
                    location,
                    purl_type="deb",
                    namespace=base.lower(),
                    qualifiers={"arch": "source", **_distro_qualifier(ecosystem)},
                )
            )
    return found


def apk_installed(
    text: str, location: str, distro: str = "alpine", version_id: str = ""
) -> list[Component]:
    ecosystem = release_ecosystem("Alpine", distro, version_id)
    found = []
    for p in _apk_stanzas(text):
        name = p.get("o") or p.get("P")
        version = p.get("V")
        if name and version:
            found.append(
                component(
                    ecosystem,
                    name,
                    version,
                    location,
                    purl_type="apk",
                    namespace="alpine",
                    qualifiers=_distro_qualifier(ecosystem),
                )
            )
    return found


def _apk_stanzas(text: str) -> Iterator[dict[str, str]]:
    fields: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            if fields:
                yield fields
            fields = {}
        elif len(line) > 1 and line[1] == ":":
            fields.setdefault(line[0], line[2:].strip())
    if fields:
        yield fields


def rpm_header(blob: bytes) -> dict[int, object]:
    """Tags of an rpm header blob as stored in rpmdb.sqlite (no lead, no magic)."""
    count, size = struct.unpack_from(">II", blob, 0)
    store = 8 + 16 * count
    if count > 100_000 or store + size > len(blob):
        raise ValueError("rpm header is truncated")
    tags: dict[int, object] = {}
    for i in range(count):
        tag, kind, offset, n = struct.unpack_from(">IIiI", blob, 8 + 16 * i)
        if not 0 <= offset < size:
            continue
        at = store + offset
        if kind in (_STRING, _I18NSTRING, _STRING_ARRAY):
            end = blob.find(b"\0", at, store + size)
            tags[tag] = blob[at : end if end != -1 else store + size].decode("utf-8", "replace")
        elif kind == _INT32 and n >= 1 and at + 4 <= store + size:
            tags[tag] = struct.unpack_from(">i", blob, at)[0]
    return tags


def rpm_packages(path: Path) -> list[dict[int, object]]:
    """The package headers of an rpmdb.sqlite, read under a deadline and a row and byte
    cap (a crafted ``Packages`` view can loop for ever): :class:`SqliteLimit` past them."""
    rows = sqlite_rows(path, "SELECT blob FROM Packages")
    return [rpm_header(bytes(row[0])) for row in rows if row[0] and len(row[0]) <= _HEADER_MAX]


def rpmdb(path: Path, location: str) -> list[Component]:
    # the file's own name, not ``path``'s: a scan keeps members under names of its own
    name = location.rsplit("/", 1)[-1]
    if name == "Packages.db":
        if not _small(path):
            unread(location, "catalog-too-large",
                   f"rpm database over the {_BDB_MAX}-byte limit: its packages were not read")
        blobs = ndb_blobs(path.read_bytes(), _HEADER_MAX) if _small(path) else []
        packages = [h for h in map(_header_or_none, blobs) if h]
    elif name == "Packages":
        if not _small(path):
            unread(location, "catalog-too-large",
                   f"rpm database over the {_BDB_MAX}-byte limit: its packages were not read")
        blobs = berkeley_hash_values(path.read_bytes()) if _small(path) else []
        packages = [h for h in map(_header_or_none, blobs) if h]
    else:
        packages = rpm_packages(path)
    headers = [h for h in packages if h.get(_NAME) and h.get(_NAME) != "gpg-pubkey"]
    names = {h[_NAME] for h in headers}
    ecosystem, namespace = next(
        ((eco, ns) for pkg, eco, ns in _RPM_DISTROS if pkg in names), ("Red Hat", "redhat")
    )
    found = []
    for h in headers:
        if not h.get(_VERSION):
            continue
        version = f"{h[_VERSION]}-{h[_RELEASE]}" if h.get(_RELEASE) else str(h[_VERSION])
        epoch = h.get(_EPOCH)
        qualifiers = {"arch": str(h[_ARCH])} if h.get(_ARCH) else {}
        if epoch:
            qualifiers["epoch"] = str(epoch)
        found.append(
            component(
                ecosystem,
                str(h[_NAME]),
                f"{epoch}:{version}" if epoch else version,
                location,
                purl_type="rpm",
                namespace=namespace,
                purl_version=version,
                qualifiers=qualifiers,
            )
        )
    return found


# Berkeley DB hash databases: page types, item types, magic
_P_HASH_UNSORTED, _P_OVERFLOW, _P_HASH = 2, 7, 13
_H_KEYDATA, _H_OFFPAGE = 1, 3
_HASH_MAGIC = 0x061561
_PAGE_HEADER = 26


def _header_or_none(blob: bytes) -> dict[int, object] | None:
    """A package's header; None for rpm's own records (record 0 counts instances)."""
    try:
        return rpm_header(blob) if len(blob) >= 8 else None
    except (ValueError, struct.error):
        return None


def _small(path: Path) -> bool:
    return path.stat().st_size <= _BDB_MAX


#: The largest rpm Berkeley DB read (a full RHEL 7 system's is 100-200 MB).
_BDB_MAX = 1024 * 1024 * 1024


def berkeley_hash_values(data: bytes) -> list[bytes]:
    """The data items of a Berkeley DB hash database (rpm's ``Packages``), in page order.

    Items on a page are key, data, key, data...; a large one lives in a chain of
    overflow pages. Byte order is the creating machine's, told by the magic.
    """
    for order in "<>":
        magic, _version, pagesize = struct.unpack_from(order + "III", data, 12)
        if magic == _HASH_MAGIC:
            break
    else:
        raise ValueError("not a Berkeley DB hash database")
    if pagesize < 512 or pagesize > 65536 or pagesize & (pagesize - 1):
        raise ValueError("Berkeley DB page size is not a power of two from 512 to 64K")
    if data[24]:
        raise ValueError("the Berkeley DB database is encrypted")
    values, pages = [], len(data) // pagesize
    for pgno in range(1, pages):
        page = memoryview(data)[pgno * pagesize : (pgno + 1) * pagesize]
        if page[25] not in (_P_HASH, _P_HASH_UNSORTED):
            continue
        (entries,) = struct.unpack_from(order + "H", page, 20)
        if _PAGE_HEADER + 2 * entries > pagesize:
            continue
        offsets = struct.unpack_from(f"{order}{entries}H", page, _PAGE_HEADER)
        for i in range(1, entries, 2):  # items alternate key, data
            at, end = offsets[i], offsets[i - 1]
            if not _PAGE_HEADER <= at < end <= pagesize:
                continue
            if page[at] == _H_KEYDATA:
                values.append(bytes(page[at + 1 : end]))
            elif page[at] == _H_OFFPAGE and at + 12 <= end:
                first, length = struct.unpack_from(order + "II", page, at + 4)
                values.append(_overflow(data, order, pagesize, first, length))
    return values


def _overflow(data: bytes, order: str, pagesize: int, pgno: int, length: int) -> bytes:
    """An item kept in a chain of overflow pages; a broken chain gives what it held."""
    out, seen = bytearray(), set()
    while pgno and len(out) < min(length, _HEADER_MAX) and pgno not in seen:
        seen.add(pgno)
        start = pgno * pagesize
        if start + pagesize > len(data) or data[start + 25] != _P_OVERFLOW:
            break
        next_pgno, _entries, used = struct.unpack_from(order + "IHH", data, start + 16)
        out += data[start + _PAGE_HEADER : start + _PAGE_HEADER + min(used, pagesize - 26)]
        pgno = next_pgno
    return bytes(out[:length])


def rpm_manifest(text: str, location: str) -> list[Component]:
    """Packages of a Mariner / Azure Linux distroless manifest: one package a line, ten
    tab-separated fields (name, version-release, install time, build time, vendor,
    "(none)", size, arch, epoch, source rpm). Malformed lines are skipped."""
    found = []
    for line in text.splitlines():
        fields = line.split("\t")
        if len(fields) != 10 or not fields[0] or "-" not in fields[1]:
            continue
        name, version, arch, epoch, source = fields[0], fields[1], fields[7], fields[8], fields[9]
        release = version.rpartition("-")[2]
        namespace = "azurelinux" if ".azl" in f".{release}" else "mariner"
        qualifiers = {"arch": arch} if arch else {}
        if epoch.isdigit() and epoch != "0":
            qualifiers["epoch"] = epoch
        if source.endswith(".src.rpm"):
            qualifiers["upstream"] = source
        found.append(
            component(
                "Azure Linux" if namespace == "azurelinux" else "Mariner",
                name,
                f"{epoch}:{version}" if "epoch" in qualifiers else version,
                location,
                purl_type="rpm",
                namespace=namespace,
                purl_version=version,
                qualifiers=qualifiers,
            )
        )
    return found


def opkg_status(text: str, location: str) -> list[Component]:
    """Installed packages of an opkg status file (OpenWrt)."""
    found = []
    for p in paragraphs(text):
        name, version = p.get("Package", ""), p.get("Version", "")
        if not name or not version or "installed" not in p.get("Status", "").split():
            continue
        arch = p.get("Architecture", "")
        found.append(
            component(
                "OpenWrt",
                name,
                version,
                location,
                purl_type="opkg",
                namespace="openwrt",
                qualifiers={"arch": arch} if arch else None,
            )
        )
    return found


def _root(location: str, suffix: str) -> str:
    """The location of the file-system root that holds ``suffix``."""
    return location[: -len(suffix)]


def _distro(by_location: dict[str, Member], root: str) -> tuple[str, str]:
    """(ID, VERSION_ID) from the os-release file of the root, or empty strings."""
    for name in _OS_RELEASE:
        member = by_location.get(root + name)
        if member:
            fields = dict(
                line.split("=", 1)
                for line in (read_text(member, 65536) or "").splitlines()
                if "=" in line
            )
            os_id, version_id = (
                fields.get(k, "").strip().strip("\"'") for k in ("ID", "VERSION_ID")
            )
            return os_id.lower(), version_id
    return "", ""


def collect(members: Iterable[Member]) -> list[Component]:
    members = list(members)
    by_location = {m.location: m for m in members}

    def dpkg(member: Member) -> Iterator[Component]:
        path = inner(member.location)
        suffix = next((s for s in _DPKG if path.endswith(s)), None)
        if suffix is None:
            suffix = path[path.rfind(_DPKG_DIR) :]
        distro, version_id = _distro(by_location, _root(member.location, suffix))
        yield from dpkg_status(read_text(member) or "", member.location, distro, version_id)

    def apk(member: Member) -> Iterator[Component]:
        distro, version_id = _distro(by_location, _root(member.location, _APK))
        yield from apk_installed(read_text(member) or "", member.location, distro, version_id)

    def rpm(member: Member) -> Iterator[Component]:
        yield from rpmdb(member.path, member.location)

    def manifest(member: Member) -> Iterator[Component]:
        yield from rpm_manifest(read_text(member) or "", member.location)

    def opkg(member: Member) -> Iterator[Component]:
        yield from opkg_status(read_text(member) or "", member.location)

    found = list(each(members, _wanted_dpkg, dpkg))
    found += each(members, _wanted_apk, apk)
    found += each(members, _wanted_rpm, rpm, _rpm_format)
    found += each(members, _wanted_manifest, manifest)
    found += each(members, _wanted_opkg, opkg)
    return found


def _rpm_format(head: bytes) -> str | None:
    """The kind of rpm database ``head`` starts, or None (a file that merely shares the name)."""
    if head.startswith(b"SQLite format 3\0"):
        return "an rpm database (SQLite)"
    if len(head) >= 16 and _HASH_MAGIC in struct.unpack_from("<I", head, 12) + struct.unpack_from(
            ">I", head, 12):
        return "an rpm database (Berkeley DB)"
    if is_ndb(head):
        return "an rpm database (NDB)"
    return None


def _wanted_dpkg(path: str) -> bool:
    if any(path == s or path.endswith("/" + s) for s in _DPKG):
        return True
    head, found, tail = path.rpartition(_DPKG_DIR)
    return (
        bool(found)
        and bool(tail)
        and (not head or head.endswith("/"))
        and "/" not in tail
        and not tail.endswith(".md5sums")
    )


def _wanted_apk(path: str) -> bool:
    return path == _APK or path.endswith("/" + _APK)


def _wanted_rpm(path: str) -> bool:
    return any(path == s or path.endswith("/" + s) for s in (*_RPMDB, *_RPM_BDB, *_RPM_NDB))


def _wanted_manifest(path: str) -> bool:
    return path == _RPM_MANIFEST or path.endswith("/" + _RPM_MANIFEST)


def _wanted_opkg(path: str) -> bool:
    return any(path == s or path.endswith("/" + s) for s in _OPKG)


def keeps(path: str) -> bool:
    """Whether :func:`collect` may read the file at this inner path."""
    return (
        _wanted_dpkg(path)
        or _wanted_apk(path)
        or _wanted_rpm(path)
        or _wanted_manifest(path)
        or _wanted_opkg(path)
        or any(path == s or path.endswith("/" + s) for s in _OS_RELEASE)
    )
