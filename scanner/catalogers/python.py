"""Python: installed distributions and sdists.

Sources: ``*.dist-info/METADATA`` (wheels, installs), ``*.egg-info/PKG-INFO`` and
``EGG-INFO/PKG-INFO`` (eggs, old installs), a ``*.egg-info`` file (distutils
installs write PKG-INFO as a single file) and the top-level ``PKG-INFO`` of an sdist.
Suffixes are matched in any case (``Foo-1.0.DIST-INFO``), as the import system
does on case-insensitive file systems. The ``Python-X.Y.egg-info`` file CPython's
own ``make install`` writes describes the interpreter, not a PyPI package: it is
left out.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from email.parser import HeaderParser

from scanner.catalogers._common import component, container, each, inner, read_text
from scanner.model import Component
from scanner.unpack import Member

_HEADERS_MAX = 1024 * 1024


def canonical(name: str) -> str:
    """PEP 503 normalised name: ``Foo.Bar_baz`` -> ``foo-bar-baz``."""
    return re.sub(r"[-_.]+", "-", name).lower()


#: The interpreter's own record: ``lib/python2.7/lib-dynload/Python-2.7.egg-info``.
_INTERPRETER = re.compile(r"^Python-\d+(\.\d+)*(-py\d+(\.\d+)*)?\.egg-info$")


def wanted(path: str) -> bool:
    parts = path.split("/")
    leaf, parent = parts[-1], (parts[-2] if len(parts) > 1 else "").lower()
    if leaf == "METADATA":
        return parent.endswith(".dist-info")
    if leaf == "PKG-INFO":
        # An sdist holds PKG-INFO at its top: "name-1.0/PKG-INFO".
        return parent.endswith(".egg-info") or parent == "egg-info" or len(parts) <= 2
    return leaf.lower().endswith(".egg-info") and not _INTERPRETER.match(leaf)


def parse(member: Member) -> Iterator[Component]:
    text = read_text(member, _HEADERS_MAX)
    if not text:
        return
    headers = HeaderParser().parsestr(text, headersonly=True)
    name = (headers.get("Name") or "").strip()
    version = (headers.get("Version") or "").strip()
    if name and version and "\n" not in name + version:
        yield component(
            "PyPI", name, version, member.location, purl_type="pypi", purl_name=canonical(name)
        )


def collect(members: Iterable[Member]) -> list[Component]:
    found = list(each(members, wanted, parse))
    # An sdist also carries its egg-info copy of PKG-INFO: report the sdist once.
    tops = {
        (container(c.location), canonical(c.name), c.version)
        for c in found
        if inner(c.location).count("/") <= 1 and inner(c.location).endswith("PKG-INFO")
    }
    return [
        c
        for c in found
        if (container(c.location), canonical(c.name), c.version) not in tops
        or inner(c.location).count("/") <= 1
    ]


def keeps(path: str) -> bool:
    """Whether :func:`collect` may read the file at this inner path."""
    return wanted(path)
