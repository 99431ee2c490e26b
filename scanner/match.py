"""Per-ecosystem names and versions: does one OSV ``affected`` entry cover a component?

Name rules: PyPI names are compared after PEP 503 normalisation; names in
case-insensitive registries are lower-cased; Go module paths, Maven
``group:artifact`` coordinates and Swift URLs are compared exactly. Ecosystems
compare on the part before ``:`` so ``Debian:12`` records apply to a ``Debian``
component whose release is unknown; a component that names its release
(``Debian:12``, from the os-release of its system) only takes records for that
release (``Debian:12``, also ``Ubuntu:22.04:LTS`` for ``Ubuntu:22.04``) and
records that name no release (see :func:`release_applies`).

Version rules follow the OSV schema's evaluation algorithm: ``ECOSYSTEM`` ranges
use the ecosystem's own ordering (``univers``), ``SEMVER`` ranges use SemVer 2.0,
``GIT`` ranges are ignored (a package carries no commit hash to compare), and an
explicit ``versions`` list matches by equality.

When a version cannot be parsed the answer is :data:`UNDECIDED` rather than a
guess: the caller reports the advisory without letting it block, so the seller and
the reviewer see it and nothing is silently dropped.
"""

from __future__ import annotations

import enum
import re

from univers import versions as uv

_ECOSYSTEMS = {
    name.lower(): name
    for name in (
        "PyPI",
        "npm",
        "Maven",
        "Go",
        "crates.io",
        "Packagist",
        "NuGet",
        "SwiftURL",
        "Debian",
        "Ubuntu",
        "Alpine",
        "RubyGems",
        "Hex",
        "Pub",
        "ConanCenter",
        "Red Hat",
        "AlmaLinux",
        "Rocky Linux",
        "openSUSE",
        "SUSE",
        "Mageia",
        "Photon OS",
        "Wolfi",
        "Chainguard",
        "Android",
        "Bitnami",
        "CRAN",
        "Hackage",
        "GHC",
        "Linux",
        "OSS-Fuzz",
        "GitHub Actions",
        "openEuler",
        "Azure Linux",
        "Assay-native",
    )
}

_CASE_SENSITIVE = {"Go", "Maven", "SwiftURL", "GitHub Actions"}

_VERSION_CLASSES: dict[str, type[uv.Version]] = {
    "PyPI": uv.PypiVersion,
    "npm": uv.SemverVersion,
    "Maven": uv.MavenVersion,
    "Go": uv.GolangVersion,
    "crates.io": uv.SemverVersion,
    "Packagist": uv.ComposerVersion,
    "NuGet": uv.NugetVersion,
    "SwiftURL": uv.SemverVersion,
    "Hex": uv.SemverVersion,
    "Pub": uv.SemverVersion,
    "RubyGems": uv.RubygemsVersion,
    "ConanCenter": uv.ConanVersion,
    "Debian": uv.DebianVersion,
    "Ubuntu": uv.DebianVersion,
    "Alpine": uv.AlpineLinuxVersion,
    "Wolfi": uv.AlpineLinuxVersion,
    "Chainguard": uv.AlpineLinuxVersion,
    "Red Hat": uv.RpmVersion,
    "AlmaLinux": uv.RpmVersion,
    "Rocky Linux": uv.RpmVersion,
    "openSUSE": uv.RpmVersion,
    "SUSE": uv.RpmVersion,
    "Mageia": uv.RpmVersion,
    "Photon OS": uv.RpmVersion,
    "openEuler": uv.RpmVersion,
    "Azure Linux": uv.RpmVersion,
}


class NativeVersion(uv.Version):
    """Versions of C libraries as their banners print them: ``1.2.11``, ``1.30.1``, ``1.0.2zd``.

    Dotted numbers (trailing zeros ignored, so ``1.2`` == ``1.2.0``), then OpenSSL's
    letter suffix, which orders after the bare number and by length before
    letters (``1.0.2`` < ``1.0.2k`` < ``1.0.2z`` < ``1.0.2za``).
    """

    _PATTERN = re.compile(r"^(\d+(?:\.\d+)*)([a-z]{0,2})$")

    @classmethod
    def is_valid(cls, string):
        return bool(cls._PATTERN.match(string or ""))

    @classmethod
    def build_value(cls, string):
        numbers, letters = cls._PATTERN.match(string).groups()
        parts = [int(n) for n in numbers.split(".")]
        while len(parts) > 1 and parts[-1] == 0:
            parts.pop()
        return (tuple(parts), len(letters), letters)


_VERSION_CLASSES["Assay-native"] = NativeVersion


class Affected(enum.Enum):
    NO = "no"
    YES = "yes"
    UNDECIDED = "undecided"


def ecosystem_base(ecosystem: str) -> str:
    """``Debian:12`` -> ``Debian``; known names in their canonical spelling."""
    base = (ecosystem or "").split(":", 1)[0].strip()
    return _ECOSYSTEMS.get(base.lower(), base)


def release_applies(component_ecosystem: str, record_ecosystem: str) -> bool:
    """Whether a record for ``record_ecosystem`` speaks about a component of ``component_ecosystem``.

    Both have the same base ecosystem. A component without a release takes every
    release's records; one with a release takes its own release's and release-less ones.
    """
    _, _, release = (component_ecosystem or "").partition(":")
    if not release:
        return True
    _, _, other = (record_ecosystem or "").partition(":")
    return not other or other == release or other.startswith(release + ":")


def normalise_name(ecosystem: str, name: str) -> str:
    """The name as compared within one ecosystem."""
    eco = ecosystem_base(ecosystem)
    name = (name or "").strip()
    if eco == "PyPI":
        return re.sub(r"[-_.]+", "-", name).lower()
    if eco in _CASE_SENSITIVE:
        return name
    return name.lower()


def _strip_prefix(ecosystem: str, version: str) -> str:
    version = version.strip()
    if ecosystem == "Go" and version.startswith("go") and version[2:3].isdigit():
        return version[2:]  # stdlib / toolchain: "go1.20.3"
    return version


def parse(ecosystem: str, version: str, *, semver: bool = False) -> uv.Version | None:
    """The version under the ecosystem's ordering (or SemVer), None if it cannot be parsed."""
    eco = ecosystem_base(ecosystem)
    cls = uv.SemverVersion if semver else _VERSION_CLASSES.get(eco)
    if cls is None or not version:
        return None
    text = _strip_prefix(eco, version)
    if semver and text[:1] in ("v", "V"):
        text = text[1:]
    try:
        return cls(text)
    except Exception:  # noqa: BLE001 -- univers raises several types for malformed input
        return None


def affected(ecosystem: str, version: str, entry: dict) -> Affected:
    """Whether ``version`` falls in an OSV ``affected[]`` entry (ranges or versions list)."""
    listed = entry.get("versions") or []
    if version in listed:
        return Affected.YES
    undecided = False
    parsed = parse(ecosystem, version)
    if listed:
        if parsed is None:
            undecided = True
        elif any(parse(ecosystem, v) == parsed for v in listed):
            return Affected.YES
    for rng in entry.get("ranges") or []:
        kind = rng.get("type")
        if kind not in ("ECOSYSTEM", "SEMVER"):
            continue
        result = in_range(ecosystem, version, rng.get("events") or [], semver=kind == "SEMVER")
        if result is Affected.YES:
            return result
        undecided = undecided or result is Affected.UNDECIDED
    return Affected.UNDECIDED if undecided else Affected.NO


def in_range(ecosystem: str, version: str, events: list[dict], *, semver: bool) -> Affected:
    """The OSV range evaluation: sort events by version, walk them, honour ``limit``."""
    current = parse(ecosystem, version, semver=semver)
    if current is None:
        return Affected.UNDECIDED
    points = []
    limits = []
    for event in events:
        for key in ("introduced", "fixed", "last_affected", "limit"):
            if key not in event:
                continue
            raw = str(event[key])
            if key == "introduced" and raw == "0":
                points.append((None, 0, key))
                continue
            if key == "limit" and raw == "*":
                continue
            at = parse(ecosystem, raw, semver=semver)
            if at is None:
                return Affected.UNDECIDED
            if key == "limit":
                limits.append(at)
            else:
                points.append((at, 1, key))
    if limits and not any(current < limit for limit in limits):
        return Affected.NO
    # "introduced: 0" sorts before every version.
    points.sort(key=_point_key)
    state = False
    for at, _, key in points:
        if key == "introduced" and (at is None or current >= at):
            state = True
        elif (key == "fixed" and current >= at) or (key == "last_affected" and current > at):
            state = False
    return Affected.YES if state else Affected.NO


class _Key:
    """Sort key over univers versions with "introduced: 0" first."""

    __slots__ = ("at",)

    def __init__(self, at):
        self.at = at

    def __lt__(self, other: _Key) -> bool:
        if self.at is None:
            return other.at is not None
        if other.at is None:
            return False
        return self.at < other.at


def _point_key(point):
    return _Key(point[0])


def fixed_versions(entry: dict) -> list[str]:
    """Every ``fixed`` event of an entry's ECOSYSTEM/SEMVER ranges."""
    found = []
    for rng in entry.get("ranges") or []:
        if rng.get("type") not in ("ECOSYSTEM", "SEMVER"):
            continue
        for event in rng.get("events") or []:
            if "fixed" in event and event["fixed"] not in found:
                found.append(str(event["fixed"]))
    return found
