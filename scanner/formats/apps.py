"""Who a mobile app or appliance says it is: APK, IPA, HAP and OVA identity.

The unpacker opens these zips and tars itself; :func:`describe` only reads the
one metadata file each carries:

* APK: ``AndroidManifest.xml`` in Android's binary XML. Only the string pool and
  the first ``<manifest>`` element are decoded (``package``, ``versionName``,
  ``versionCode``), also when attribute names are stripped and only their
  resource IDs remain.
* IPA: ``Payload/<App>.app/Info.plist`` (XML or binary plist).
* HAP (HarmonyOS): ``module.json`` (stage model) or ``config.json`` (FA model),
  with ``pack.info`` as a fallback.
* OVA: the ``.ovf`` descriptor's product section.

Returns a dict with ``id``, ``version`` and, when known, ``version_code`` and
``name``; an empty dict when nothing could be read. Never raises for bad input.
"""

from __future__ import annotations

import json
import plistlib
import re
import struct
import tarfile
import zipfile
from pathlib import Path

from defusedxml import ElementTree

MAX_METADATA = 8 * 1024 * 1024

ATTR_IDS = {0x0101021B: "versionCode", 0x0101021C: "versionName"}
TYPE_STRING, TYPE_INT_DEC, TYPE_INT_HEX = 0x03, 0x10, 0x11


def describe(fmt: str, path: Path) -> dict:
    try:
        if fmt == "apk":
            return _apk(path)
        if fmt == "ipa":
            return _ipa(path)
        if fmt == "hap":
            return _hap(path)
        if fmt == "ova":
            return _ova(path)
    except Exception:  # noqa: BLE001 - identity is a nicety; unreadable metadata gives none
        return {}
    return {}


def _read_member(zf: zipfile.ZipFile, name: str) -> bytes:
    info = zf.getinfo(name)
    if info.file_size > MAX_METADATA:
        raise ValueError(f"{name} is too large")
    with zf.open(info) as fh:
        return fh.read(MAX_METADATA + 1)


# --------------------------------------------------------------------------- APK


def _apk(path: Path) -> dict:
    with zipfile.ZipFile(path) as zf:
        data = _read_member(zf, "AndroidManifest.xml")
    attrs = manifest_attributes(data)
    out = {"id": attrs.get("package", ""), "version": attrs.get("versionName", "")}
    if "versionCode" in attrs:
        out["version_code"] = attrs["versionCode"]
    return out if out["id"] else {}


def _pool(data: bytes, off: int) -> list[str]:
    _type, header_size, _size, count, _styles, flags, strings_start, _ = struct.unpack_from(
        "<HHIIIIII", data, off
    )
    utf8 = bool(flags & 0x100)
    offsets = struct.unpack_from(f"<{count}I", data, off + header_size)
    base = off + strings_start
    out = []
    for o in offsets:
        p = base + o
        if utf8:
            p += 2 if data[p] & 0x80 else 1  # length in UTF-16 units
            n = data[p]
            if n & 0x80:
                n = ((n & 0x7F) << 8) | data[p + 1]
                p += 1
            out.append(data[p + 1 : p + 1 + n].decode("utf-8", "replace"))
        else:
            (n,) = struct.unpack_from("<H", data, p)
            if n & 0x8000:
                n = ((n & 0x7FFF) << 16) | struct.unpack_from("<H", data, p + 2)[0]
                p += 2
            out.append(data[p + 2 : p + 2 + 2 * n].decode("utf-16-le", "replace"))
    return out


def manifest_attributes(data: bytes) -> dict[str, str]:
    """Attributes of the ``<manifest>`` element of a binary AndroidManifest.xml."""
    if len(data) < 8 or struct.unpack_from("<H", data, 0)[0] != 0x0003:
        raise ValueError("not binary XML")
    strings: list[str] = []
    res_ids: list[int] = []
    off = struct.unpack_from("<H", data, 2)[0]
    while off + 8 <= len(data):
        ctype, header_size, size = struct.unpack_from("<HHI", data, off)
        if size < 8:
            raise ValueError("bad chunk")
        if ctype == 0x0001:
            strings = _pool(data, off)
        elif ctype == 0x0180:
            res_ids = list(struct.unpack_from(f"<{(size - header_size) // 4}I", data, off + header_size))
        elif ctype == 0x0102:
            name_idx = struct.unpack_from("<I", data, off + 20)[0]
            if name_idx < len(strings) and strings[name_idx] == "manifest":
                return _attributes(data, off, strings, res_ids)
        off += size
    return {}


def _attributes(data: bytes, off: int, strings: list[str], res_ids: list[int]) -> dict[str, str]:
    attr_start, attr_size, attr_count = struct.unpack_from("<HHH", data, off + 24)
    out = {}
    for i in range(attr_count):
        a = off + 16 + attr_start + i * attr_size
        _ns, name_idx, raw_idx, _vsize, _res0, vtype, value = struct.unpack_from("<IIIHBBI", data, a)
        name = strings[name_idx] if name_idx < len(strings) else ""
        if name_idx < len(res_ids) and res_ids[name_idx] in ATTR_IDS:
            name = ATTR_IDS[res_ids[name_idx]]
        if raw_idx != 0xFFFFFFFF and raw_idx < len(strings):
            out[name] = strings[raw_idx]
        elif vtype == TYPE_STRING and value < len(strings):
            out[name] = strings[value]
        elif vtype in (TYPE_INT_DEC, TYPE_INT_HEX):
            out[name] = str(value)
    return out


# --------------------------------------------------------------------------- IPA


def _ipa(path: Path) -> dict:
    with zipfile.ZipFile(path) as zf:
        names = [n for n in zf.namelist() if re.fullmatch(r"Payload/[^/]+\.app/Info\.plist", n)]
        if not names:
            return {}
        plist = plistlib.loads(_read_member(zf, names[0]))
    if not isinstance(plist, dict):
        return {}
    out = {
        "id": str(plist.get("CFBundleIdentifier", "")),
        "version": str(plist.get("CFBundleShortVersionString", "") or plist.get("CFBundleVersion", "")),
        "name": str(plist.get("CFBundleName", "") or plist.get("CFBundleDisplayName", "")),
    }
    if plist.get("CFBundleVersion"):
        out["version_code"] = str(plist["CFBundleVersion"])
    return out if out["id"] else {}


# --------------------------------------------------------------------------- HAP


def _hap(path: Path) -> dict:
    with zipfile.ZipFile(path) as zf:
        names = set(zf.namelist())
        for name in ("module.json", "config.json", "pack.info"):
            if name in names:
                found = _hap_json(json.loads(_read_member(zf, name)))
                if found:
                    return found
    return {}


def _hap_json(doc: dict) -> dict:
    app = doc.get("app") or {}
    if not app and "summary" in doc:  # pack.info
        app = (doc.get("summary") or {}).get("app") or {}
    version = app.get("versionName") or (app.get("version") or {}).get("name", "")
    code = app.get("versionCode") or (app.get("version") or {}).get("code")
    out = {"id": str(app.get("bundleName", "")), "version": str(version or "")}
    if code is not None:
        out["version_code"] = str(code)
    module = doc.get("module") or {}
    if module.get("name"):
        out["name"] = str(module["name"])
    return out if out["id"] else {}


# --------------------------------------------------------------------------- OVA


def _ova(path: Path) -> dict:
    with tarfile.open(path, "r:") as tar:
        for info in tar:
            if info.isreg() and info.name.lower().endswith(".ovf") and info.size <= MAX_METADATA:
                fh = tar.extractfile(info)
                root = ElementTree.fromstring(fh.read() if fh else b"")
                return _ovf_product(root)
    return {}


def _ovf_product(root) -> dict:
    def first(tag: str) -> str:
        for el in root.iter():
            if el.tag.rsplit("}", 1)[-1] == tag and (el.text or "").strip():
                return el.text.strip()
        return ""

    name = first("Product") or first("Name")
    return {"id": name, "version": first("Version") or first("FullVersion"), "name": name} if name else {}
