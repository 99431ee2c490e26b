"""Helpers shared by the catalogers."""

from __future__ import annotations

import json
import re
import sqlite3
import struct
import zlib
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from packageurl import PackageURL

from scanner.model import NEST, Component
from scanner.unpack import Member

#: Metadata files larger than this are not parsed (a lock file is a few MB at most).
MAX_TEXT = 64 * 1024 * 1024

#: What a malformed (or hostile) metadata file raises while it is parsed.
PARSE_ERRORS = (
    ValueError,  # also JSONDecodeError, UnicodeDecodeError, TOMLDecodeError
    KeyError,
    TypeError,
    AttributeError,
    IndexError,
    struct.error,
    zlib.error,
    sqlite3.Error,
    RecursionError,
)


def inner(location: str) -> str:
    """The path of a member inside its innermost container."""
    return location.rsplit(NEST, 1)[-1]


def container(location: str) -> str:
    """The location of a member's innermost container."""
    return location.rsplit(NEST, 1)[0]


def read_bytes(member: Member, limit: int = MAX_TEXT) -> bytes | None:
    if member.size > limit:
        return None
    with open(member.path, "rb") as f:
        return f.read(limit)


def read_text(member: Member, limit: int = MAX_TEXT) -> str | None:
    data = read_bytes(member, limit)
    return None if data is None else data.decode("utf-8", "replace").lstrip("\ufeff")


def read_json(member: Member) -> Any:
    text = read_text(member)
    return None if text is None else json.loads(text)


def as_dict(value: Any) -> dict:
    return value if isinstance(value, dict) else {}


def as_list(value: Any) -> list:
    return value if isinstance(value, list) else []


def text(value: Any) -> str:
    """A metadata value as a stripped string ("" for anything that is not text)."""
    return value.strip() if isinstance(value, str) else ""


def component(
    ecosystem: str,
    name: str,
    version: str,
    location: str,
    *,
    purl_type: str,
    namespace: str | None = None,
    purl_name: str | None = None,
    purl_version: str | None = None,
    qualifiers: dict[str, str] | None = None,
    scope: str = "runtime",
) -> Component:
    purl = PackageURL(
        type=purl_type,
        namespace=namespace or None,
        name=purl_name or name,
        version=purl_version or version,
        qualifiers=qualifiers or None,
    ).to_string()
    return Component(
        ecosystem=ecosystem, name=name, version=version, purl=purl, location=location,
        scope=scope,
    )


def each(
    members: Iterable[Member],
    wanted: Callable[[str], bool],
    parse: Callable[[Member], Iterable[Component]],
) -> Iterator[Component]:
    """Parse every member whose inner path is wanted, skipping malformed files."""
    for member in members:
        if member.depth and wanted(inner(member.location)):
            try:
                yield from list(parse(member))
            except PARSE_ERRORS:
                continue


def leaf(path: str) -> str:
    return path.rsplit("/", 1)[-1]


_VERSION_RE = re.compile(r"[vV]?\d")


def looks_like_version(value: str) -> bool:
    """True for a version a registry publishes (not a URL, path, tag or alias)."""
    return bool(_VERSION_RE.match(value)) and ":" not in value and "/" not in value
