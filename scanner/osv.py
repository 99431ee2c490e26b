"""A local copy of OSV data and the matching of components against it.

Data comes from directory trees of OSV JSON records and/or the ``all.zip`` files
osv.dev publishes per ecosystem. Withdrawn records are dropped at load time.

Matching (DESIGN §5): a component matches a record when the ecosystem (the part
before ``:``, and the release when the component names one), the normalised
name and the version agree (see :mod:`scanner.match`).
Matched records that alias each other, directly or through a chain, become one
finding; ``related`` does not merge. A finding's score is the highest CVSS base
score computed from the vectors of all its records (v3.x/v4.0; v2 only if nothing
newer exists) and names the record and vector that decided it.

A component whose version cannot be compared with a record's ranges is still
reported for that record, never blocking, with the reason at the start of the
summary: dropping it would call the component clean without knowing.
"""

from __future__ import annotations

import hashlib
import json
import re
import zipfile
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from scanner import cvss_score
from scanner.match import (
    Affected,
    affected,
    ecosystem_base,
    fixed_versions,
    normalise_name,
    parse,
    release_applies,
)
from scanner.model import Component, Cvss, Finding, ScanError

MAX_REFERENCES = 5
MAX_SUMMARY = 300
UNDECIDED_NOTE = "Version could not be compared with this advisory's ranges; review by hand. "


@dataclass
class _Record:
    id: str
    aliases: tuple[str, ...]
    summary: str
    label: str | None
    severity: list[dict]
    affected: list[dict]
    references: tuple[str, ...]
    digest: str
    modified: str = ""
    #: (ecosystem base, normalised name) keys this record's affected entries cover
    keys: set = field(default_factory=set)


class OsvDatabase:
    """OSV records indexed by (ecosystem, normalised name)."""

    def __init__(self, records: Iterable[_Record] = ()):
        self._records: dict[str, _Record] = {}
        for record in records:
            self._add(record)
        self._index: dict[tuple[str, str], list[str]] = defaultdict(list)
        for record in sorted(self._records.values(), key=lambda r: r.id):
            for key in sorted(record.keys):
                self._index[key].append(record.id)
        digest = hashlib.sha256()
        for record in sorted(self._records.values(), key=lambda r: r.id):
            digest.update(f"{record.id}\0{record.digest}\n".encode())
        self.records = len(self._records)
        self.snapshot = f"osv:sha256:{digest.hexdigest()[:12]}/{self.records}"

    def _add(self, record: _Record) -> None:
        # The same ID from two sources (a folder and a zip): keep the newest.
        old = self._records.get(record.id)
        if old is None or (record.modified, record.digest) > (old.modified, old.digest):
            self._records[record.id] = record

    @classmethod
    def load(cls, paths: Iterable[Path]) -> OsvDatabase:
        """Read every record under the given folders (``*.json``, recursively) and zip files.

        Raises :class:`ScanError` for a missing path or an unreadable file: scanning
        against silently incomplete data would call vulnerable packages clean.
        """
        records = []
        for path in paths:
            path = Path(path)
            for source, data in _read_source(path):
                record = _parse(source, data)
                if record is not None:
                    records.append(record)
        return cls(records)

    def match(self, components: Iterable[Component], threshold: float) -> list[Finding]:
        """One finding per (component@version, merged advisory), at the first location."""
        by_package: dict[tuple[str, str, str, str], list[Component]] = defaultdict(list)
        for component in components:
            eco = ecosystem_base(component.ecosystem)
            key = (eco, normalise_name(eco, component.name), component.version, component.ecosystem)
            by_package[key].append(component)
        findings = []
        for (eco, name, _, _), found in sorted(by_package.items()):
            # shipped before dev-only: the finding is about the most serious place it sits
            first = min(found, key=lambda c: (scope_rank(c.scope), c.location, c.name, c.purl))
            findings.extend(self._match_one(eco, name, first, threshold))
        return findings

    def _match_one(self, eco: str, name: str, component: Component, threshold: float):
        hits: dict[str, tuple[_Record, list[dict], bool]] = {}
        for record_id in self._index.get((eco, name), ()):
            record = self._records[record_id]
            entries = [
                e
                for e in record.affected
                if _entry_key(e) == (eco, name)
                and release_applies(component.ecosystem, _entry_ecosystem(e))
            ]
            if not entries:
                continue
            states = [affected(eco, component.version, e) for e in entries]
            if Affected.YES in states:
                hits[record_id] = (record, entries, False)
            elif Affected.UNDECIDED in states:
                hits[record_id] = (record, entries, True)
        for group in _groups([h[0] for h in hits.values()]):
            yield _finding(eco, name, component, [hits[r.id] for r in group], threshold)


#: Component scopes from the most to the least shipped.
SCOPES = ("runtime", "unknown", "optional", "dev")


def scope_rank(scope: str) -> int:
    return SCOPES.index(scope) if scope in SCOPES else 0


def _read_source(path: Path):
    try:
        if path.is_dir():
            for file in sorted(path.rglob("*.json")):
                if file.is_file():
                    yield str(file), file.read_bytes()
        elif zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as archive:
                for info in sorted(archive.infolist(), key=lambda i: i.filename):
                    if info.filename.endswith(".json") and not info.is_dir():
                        yield f"{path}!/{info.filename}", archive.read(info)
        elif path.is_file():
            yield str(path), path.read_bytes()
        else:
            raise ScanError(f"OSV data not found: {path}")
    except (OSError, zipfile.BadZipFile) as exc:
        raise ScanError(f"OSV data unreadable: {path}: {exc}") from exc


def _parse(source: str, data: bytes) -> _Record | None:
    try:
        raw = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ScanError(f"OSV data unreadable: {source}: {exc}") from exc
    if not isinstance(raw, dict) or not isinstance(raw.get("id"), str):
        raise ScanError(f"OSV data unreadable: {source}: not an OSV record")
    if raw.get("withdrawn"):
        return None
    entries = [e for e in raw.get("affected") or [] if isinstance(e, dict)]
    refs = sorted(
        (r for r in raw.get("references") or [] if isinstance(r, dict) and r.get("url")),
        key=lambda r: r.get("type") != "ADVISORY",
    )
    label = (raw.get("database_specific") or {}).get("severity")
    return _Record(
        id=raw["id"],
        aliases=tuple(a for a in raw.get("aliases") or [] if isinstance(a, str)),
        summary=_summary(raw),
        label=label.upper() if isinstance(label, str) and label else None,
        severity=[s for s in raw.get("severity") or [] if isinstance(s, dict)],
        affected=entries,
        references=tuple(dict.fromkeys(r["url"] for r in refs)),
        digest=hashlib.sha256(data).hexdigest(),
        modified=str(raw.get("modified") or ""),
        keys={_entry_key(e) for e in entries if _entry_key(e)[1]},
    )


def _summary(raw: dict) -> str:
    text = raw.get("summary") or ""
    if not text:
        details = (raw.get("details") or "").strip()
        text = details.split("\n\n", 1)[0].replace("\n", " ")
    text = " ".join(str(text).split())
    return text if len(text) <= MAX_SUMMARY else text[: MAX_SUMMARY - 1] + "…"


def _entry_ecosystem(entry: dict) -> str:
    return str((entry.get("package") or {}).get("ecosystem") or "")


def _entry_key(entry: dict) -> tuple[str, str]:
    package = entry.get("package") or {}
    eco = ecosystem_base(package.get("ecosystem") or "")
    return eco, normalise_name(eco, package.get("name") or "")


def _groups(records: list[_Record]) -> list[list[_Record]]:
    """Union-find over each record's ID and aliases (``related`` does not merge)."""
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        while parent.setdefault(x, x) != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for record in records:
        for alias in record.aliases:
            a, b = find(record.id), find(alias)
            if a != b:
                parent[max(a, b)] = min(a, b)
    grouped: dict[str, list[_Record]] = defaultdict(list)
    for record in records:
        grouped[find(record.id)].append(record)
    return [sorted(g, key=lambda r: r.id) for _, g in sorted(grouped.items())]


def _finding(eco, name, component: Component, hits, threshold: float) -> Finding:
    records = [record for record, _, _ in hits]
    undecided = all(flag for _, _, flag in hits)
    ids = tuple(sorted(r.id for r in records))
    aliases = tuple(sorted({a for r in records for a in r.aliases} - set(ids), key=_id_key))
    scores = []
    for record, entries, _ in hits:
        vectors = list(record.severity)
        for entry in entries:
            vectors.extend(s for s in entry.get("severity") or [] if isinstance(s, dict))
        for item in vectors:
            value = cvss_score.base_score(item.get("type"), item.get("score"))
            if value is not None:
                scores.append(cvss_score.Score(value, item["score"], item["type"], record.id))
    decided = cvss_score.best(scores)
    cvss = Cvss(decided.score, decided.vector, decided.source) if decided else None
    by_id = {r.id: r for r in records}
    first = [by_id[decided.source]] if decided else []
    ordered = first + records
    label = next((r.label for r in ordered if r.label), None)
    if label is None and cvss is not None:
        label = cvss_score.label(cvss.score)
    summary = next((r.summary for r in ordered if r.summary), "")
    if undecided:
        summary = UNDECIDED_NOTE + summary
    return Finding(
        id=fingerprint(eco, name, component.version, advisory_key(ids, aliases)),
        type="vulnerability",
        location=component.location,
        blocking=bool(cvss and not undecided and cvss.score >= threshold),
        ids=ids,
        aliases=aliases,
        component=component,
        cvss=cvss,
        severity=label,
        engine="osv",
        summary=summary,
        fixed_versions=_fixed(eco, component.version, hits),
        references=tuple(dict.fromkeys(u for r in ordered for u in r.references))[:MAX_REFERENCES],
    )


def _fixed(eco: str, version: str, hits) -> tuple[str, ...]:
    """Fixed versions newer than the component's, in version order (all of them if unsure)."""
    found = list(
        dict.fromkeys(v for _, entries, _ in hits for e in entries for v in fixed_versions(e))
    )
    current = parse(eco, version)
    parsed = {v: parse(eco, v) for v in found}
    if current is None or any(p is None for p in parsed.values()):
        return tuple(found)
    return tuple(sorted((v for v in found if parsed[v] > current), key=parsed.__getitem__))


def _id_key(identifier: str):
    """Natural order: CVE-2019-999 before CVE-2019-1000."""
    return [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", identifier)]


def advisory_key(ids: Iterable[str], aliases: Iterable[str] = ()) -> str:
    """The canonical advisory of a merged finding: lowest CVE if any, else lowest record ID."""
    ids = list(ids)
    cves = [i for i in (*ids, *aliases) if i.upper().startswith("CVE-")]
    return min(cves or ids, key=_id_key)


def fingerprint(ecosystem: str, name: str, version: str, advisory: str) -> str:
    """Stable finding ID: same component, version and advisory on every rescan."""
    eco = ecosystem_base(ecosystem)
    text = "\x1f".join(("vulnerability", eco, normalise_name(eco, name), version, advisory))
    return hashlib.sha256(text.encode()).hexdigest()[:32]
