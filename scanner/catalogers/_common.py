"""Helpers shared by the catalogers."""

from __future__ import annotations

import contextlib
import contextvars
import json
import re
import sqlite3
import struct
import time
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.request import pathname2url

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


#: SQLite virtual-machine instructions between two looks at the clock.
SQLITE_STEPS = 10_000
#: Wall-clock time one SQLite database may take to read.
SQLITE_SECONDS = 60.0
#: Rows and bytes of rows one SQLite query may return.
SQLITE_ROWS = 1_000_000
SQLITE_BYTES = 1024 * 1024 * 1024


class OutOfTime(Exception):
    """The catalog stage's deadline has passed: no more files are read."""


@dataclass
class Unread:
    """A metadata file that was not read, and why (an ``unscanned`` finding)."""

    location: str
    code: str
    reason: str  # one line, meant for a seller


@dataclass
class Session:
    """What one catalog run shares: its deadline and the files it could not read."""

    deadline: float | None = None  # time.monotonic() value
    unread: list[Unread] = field(default_factory=list)
    current: Member | None = None  # the file being parsed by :func:`each`

    def note(self, location: str, code: str, reason: str) -> None:
        if not any(u.location == location and u.code == code for u in self.unread):
            self.unread.append(Unread(location, code, reason))


_SESSION: contextvars.ContextVar[Session | None] = contextvars.ContextVar(
    "assay_catalog_session", default=None
)


@contextlib.contextmanager
def session(deadline: float | None = None) -> Iterator[Session]:
    """Collect what the catalogers could not read (and stop them at ``deadline``)."""
    current = Session(deadline)
    token = _SESSION.set(current)
    try:
        yield current
    finally:
        _SESSION.reset(token)


def unread(location: str, code: str, reason: str) -> None:
    """Record that the file at ``location`` was not read (outside a session: nothing)."""
    current = _SESSION.get()
    if current is not None:
        current.note(location, code, reason)


def check_deadline() -> None:
    """Raise :class:`OutOfTime` once the catalog stage's deadline has passed."""
    current = _SESSION.get()
    if current is not None and current.deadline is not None and time.monotonic() > current.deadline:
        raise OutOfTime()


class SqliteLimit(Exception):
    """A SQLite query went over its time, row or byte limit."""


def sqlite_rows(path, query: str, *, seconds: float | None = None, rows: int | None = None,
                size: int | None = None) -> list[tuple]:
    """The rows of ``query`` on the SQLite database at ``path``, opened read-only.

    SQLite runs the query in C, where a recursive view can loop for ever: a progress
    handler stops it at the deadline (``seconds``, or the catalog stage's deadline if
    sooner), and rows past ``rows`` or ``size`` bytes stop it too. Raises
    :class:`SqliteLimit` (with a reason) when a limit is crossed, sqlite3.Error when
    the file is not a database it can read.
    """
    seconds = SQLITE_SECONDS if seconds is None else seconds
    rows = SQLITE_ROWS if rows is None else rows
    size = SQLITE_BYTES if size is None else size
    deadline = time.monotonic() + seconds
    why = f"reading it took over {seconds:g} seconds"
    current = _SESSION.get()
    if current is not None and current.deadline is not None and current.deadline < deadline:
        deadline, why = current.deadline, "the catalog stage's time limit was reached"
    uri = f"file:{pathname2url(str(path))}?mode=ro&immutable=1"
    connection = sqlite3.connect(uri, uri=True, check_same_thread=False)
    late = False

    def stop() -> int:
        nonlocal late
        late = time.monotonic() > deadline
        return 1 if late else 0

    connection.set_progress_handler(stop, SQLITE_STEPS)
    out: list[tuple] = []
    taken = 0
    try:
        try:
            cursor = connection.execute(query)
            while batch := cursor.fetchmany(256):
                for row in batch:
                    taken += sum(len(v) if isinstance(v, (bytes, str)) else 8 for v in row)
                    out.append(row)
                if len(out) > rows:
                    raise SqliteLimit(f"more than {rows} rows")
                if taken > size:
                    raise SqliteLimit(f"rows over {size} bytes")
        except sqlite3.OperationalError as exc:
            if late:
                raise SqliteLimit(why) from exc
            raise
    finally:
        connection.close()
    return out


def inner(location: str) -> str:
    """The path of a member inside its innermost container."""
    return location.rsplit(NEST, 1)[-1]


def container(location: str) -> str:
    """The location of a member's innermost container."""
    return location.rsplit(NEST, 1)[0]


def read_bytes(member: Member, limit: int = MAX_TEXT) -> bytes | None:
    """The file's bytes, or None when it is over ``limit`` (the file :func:`each` is
    parsing is then reported as not read)."""
    if member.size > limit:
        current = _SESSION.get()
        if current is not None and current.current is member:
            current.note(
                member.location, "catalog-too-large",
                f"metadata file of {member.size} bytes is over the {limit}-byte limit"
                " for this kind of file: its components were not read",
            )
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


def head(member: Member, size: int = 4096) -> bytes:
    """The file's first bytes (b"" when it cannot be read)."""
    try:
        with open(member.path, "rb") as f:
            return f.read(size)
    except OSError:
        return b""


def each(
    members: Iterable[Member],
    wanted: Callable[[str], bool],
    parse: Callable[[Member], Iterable[Component]],
    recognised: Callable[[bytes], str | None] | None = None,
) -> Iterator[Component]:
    """Parse every member whose inner path is wanted, skipping malformed files.

    A file over its size limit is reported (see :func:`read_bytes`). A malformed file
    is reported only when ``recognised`` (given the file's first bytes) names its
    format: many files merely share a metadata file's name, and those stay silent.
    """
    current = _SESSION.get()
    for member in members:
        if member.depth and wanted(inner(member.location)):
            check_deadline()
            if current is not None:
                current.current = member
            try:
                yield from list(parse(member))
            except SqliteLimit as exc:
                unread(member.location, "catalog-limit",
                       f"SQLite database not read to the end: {exc}; its components were not read")
            except PARSE_ERRORS as exc:
                kind = recognised(head(member)) if recognised is not None else None
                if kind:
                    unread(member.location, "catalog-malformed",
                           f"could not be read as {kind}: {_why(exc)}")
                continue
            finally:
                if current is not None:
                    current.current = None


def guarded(
    member: Member,
    parse: Callable[[Member], Iterable[Component]],
    recognised: Callable[[bytes], str | None] | None = None,
) -> list[Component]:
    """:func:`each` for one file a cataloger picked itself: its components, or none
    (and a finding as :func:`each` would make) when it is too large or malformed."""
    return list(each([member], lambda _path: True, parse, recognised))


def _why(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text[:200]


def leaf(path: str) -> str:
    return path.rsplit("/", 1)[-1]


_VERSION_RE = re.compile(r"[vV]?\d")


def looks_like_version(value: str) -> bool:
    """True for a version a registry publishes (not a URL, path, tag or alias)."""
    return bool(_VERSION_RE.match(value)) and ":" not in value and "/" not in value
