"""Snapshots of OSV data on disk, switched in atomically.

Layout of the data folder (``OSV_DIR``)::

    snapshots/<digest>/<Ecosystem>/all.zip | *.json   one folder per snapshot, never changed
    snapshots/<digest>/snapshot.manifest               what it holds, per ecosystem
    current -> snapshots/<digest>                      the snapshot in use (a symlink)

An import builds a whole new snapshot in a staging folder beside the others (the previous
snapshot's ecosystems, with the imported ones replaced), loads it to prove every record is
readable, renames it into ``snapshots/`` and only then replaces ``current`` with one
``rename``: a broken or truncated input leaves the snapshot in force untouched. A process
that loaded the previous snapshot keeps it in memory; snapshots are kept by digest (the
newest ``keep`` and the one in use) so a past verdict can be checked on its own data.

A folder without ``current`` (records copied in by hand, an older install) is read as it is.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import tempfile
import zipfile
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from scanner.match import ecosystem_base
from scanner.model import ScanError
from scanner.osv import OsvDatabase, _Record

SNAPSHOTS = "snapshots"
CURRENT = "current"
MANIFEST = "snapshot.manifest"
#: Names in the data folder that are never OSV data of their own.
RESERVED = {SNAPSHOTS, CURRENT, "sync.json", "downloads", "PROVENANCE.jsonl"}


class ImportFailed(ValueError):
    """The input is not OSV data that can be switched in; nothing was changed."""


@dataclass(frozen=True)
class EcosystemInfo:
    records: int
    modified: str  # the newest ``modified`` among its records
    source: str


@dataclass
class ImportResult:
    snapshot: str  # osv:sha256:<digest>/<records>
    previous: str | None
    ecosystems: dict[str, EcosystemInfo]
    imported: list[str]  # the ecosystems this import replaced
    changed: list[_Record] = field(default_factory=list)  # records new or changed since previous
    unchanged: bool = False  # the same data as a kept snapshot: switched to it


def digest_of(snapshot: str) -> str:
    """``osv:sha256:0123456789ab/42`` -> ``0123456789ab`` (the snapshot's folder name)."""
    return snapshot.removeprefix("osv:sha256:").split("/", 1)[0]


def active_dir(root: Path) -> Path | None:
    """The folder scans read now: the current snapshot, or ``root`` itself in the old layout."""
    root = Path(root)
    link = root / CURRENT
    if link.is_dir():
        return link.resolve()
    if root.is_dir() and _data_children(root):
        return root
    return None


def sources(folder: Path) -> list[Path]:
    """What :meth:`OsvDatabase.load` reads for ``folder``: its data folders and files."""
    found = []
    for child in _data_children(folder):
        found.append(child)
        if child.is_dir():
            found.extend(sorted(p for p in child.rglob("*.zip") if p.is_file()))
    return found


def _data_children(folder: Path) -> list[Path]:
    return [c for c in sorted(Path(folder).iterdir())
            if c.name not in RESERVED and not c.name.startswith(".")
            and (c.is_dir() or c.suffix in (".zip", ".json"))]


def manifest(folder: Path) -> dict:
    """A snapshot's manifest ({} for the old layout or a missing one)."""
    try:
        return json.loads((Path(folder) / MANIFEST).read_text())
    except (OSError, ValueError):
        return {}


def ecosystems_of(folder: Path) -> dict[str, dict]:
    """Per ecosystem ``records`` and newest ``modified``: from the manifest of a snapshot; for
    a folder without one, the number of JSON files (zips uncounted) without reading them."""
    info = manifest(folder).get("ecosystems")
    if info is not None:
        return info
    found = {}
    for eco, files in _parts(Path(folder), base=True).items():
        zipped = any(f.suffix == ".zip" for f in files)
        found[eco] = {"records": None if zipped else len(files), "modified": ""}
    return found


def find_snapshot(root: Path, snapshot: str) -> Path | None:
    """The kept folder of the snapshot named by a scan (``osv:sha256:…/n``), or None."""
    digest = digest_of(snapshot or "")
    if not digest or not all(c in "0123456789abcdef" for c in digest):
        return None
    folder = Path(root) / SNAPSHOTS / digest
    if folder.is_dir():
        return folder
    active = active_dir(root)
    if active is not None and active == Path(root) and load(active).snapshot == snapshot:
        return active
    return None


def load(folder: Path) -> OsvDatabase:
    return OsvDatabase.load(sources(folder))


def kept_snapshots(root: Path) -> list[tuple[str, dict]]:
    """(digest, manifest) of every kept snapshot, newest first."""
    base = Path(root) / SNAPSHOTS
    if not base.is_dir():
        return []
    found = [(p.name, manifest(p)) for p in base.iterdir() if p.is_dir()]
    return sorted(found, key=lambda item: (item[1].get("created", ""), item[0]), reverse=True)


# --- import ----------------------------------------------------------------------------

def import_data(root: Path, paths: list[Path], *, keep: int = 5,
                ecosystems: dict[str, Path] | None = None) -> ImportResult:
    """Build a snapshot from the one in use with the ecosystems in ``paths`` (and the
    ``all.zip`` files named by ecosystem in ``ecosystems``) replaced, and switch to it.
    Raises :class:`ImportFailed` (nothing changed) for unusable input."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    parts: dict[str, tuple[str, list[Path]]] = {}
    for path in paths:  # several inputs of one ecosystem are one ecosystem's data together
        for eco, files in _parts(Path(path)).items():
            source, known = parts.get(eco, ("", []))
            parts[eco] = (f"{source}, {path}" if source else str(path), known + files)
    for eco, archive in (ecosystems or {}).items():
        check_zip(Path(archive))
        parts[eco] = (eco, [Path(archive)])
    if not parts:
        raise ImportFailed(f"no OSV records found in {', '.join(map(str, paths))}")
    with _locked(root):
        return _import_locked(root, parts, keep)


def _import_locked(root: Path, parts: dict, keep: int) -> ImportResult:
    previous_dir = active_dir(root)
    previous = load(previous_dir) if previous_dir is not None else None
    old_manifest = manifest(previous_dir) if previous_dir is not None else {}
    staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=root))
    try:
        if previous_dir is not None:
            for eco, files in _parts(previous_dir, base=True).items():
                if eco not in parts:
                    _place(staging / eco, files, link=True)
        for eco, (_, files) in parts.items():
            _place(staging / eco, files, link=False)
        ecosystems, records = {}, []
        for eco_dir in sorted(p for p in staging.iterdir() if p.is_dir()):
            try:
                database = load(eco_dir)
            except ScanError as exc:
                raise ImportFailed(str(exc).replace(str(staging) + "/", "")) from None
            eco = eco_dir.name
            source = parts[eco][0] if eco in parts else \
                old_manifest.get("ecosystems", {}).get(eco, {}).get("source", "")
            ecosystems[eco] = EcosystemInfo(
                database.records, max((r.modified for r in database._records.values()), default=""),
                source)
            records.extend(database._records.values())
        database = OsvDatabase(records)
        if not database.records:
            raise ImportFailed("the data holds no OSV records (all withdrawn or none at all)")
        digest = digest_of(database.snapshot)
        _write_manifest(staging, database, ecosystems, sorted(parts))
        final = root / SNAPSHOTS / digest
        final.parent.mkdir(exist_ok=True)
        unchanged = final.is_dir()
        if unchanged:
            shutil.rmtree(staging)
            os.utime(final)
        else:
            os.rename(staging, final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    _switch(root, digest)
    prune(root, keep)
    return ImportResult(database.snapshot, previous.snapshot if previous else None, ecosystems,
                        sorted(parts), changed_records(previous, database), unchanged)


def changed_records(old: OsvDatabase | None, new: OsvDatabase) -> list[_Record]:
    """Records of ``new`` that ``old`` lacks or holds with other content."""
    before = {} if old is None else {i: r.digest for i, r in old._records.items()}
    return [r for i, r in sorted(new._records.items()) if before.get(i) != r.digest]


def _write_manifest(folder: Path, database: OsvDatabase, ecosystems: dict, imported) -> None:
    data = {"snapshot": database.snapshot, "records": database.records,
            "created": datetime.now(UTC).isoformat(timespec="microseconds"),
            "imported": list(imported),
            "ecosystems": {eco: vars(info) for eco, info in ecosystems.items()}}
    (folder / MANIFEST).write_text(json.dumps(data, indent=1, sort_keys=True))


def _switch(root: Path, digest: str) -> None:
    """Point ``current`` at the snapshot with one rename (readers see old or new, never none)."""
    tmp = root / f".current-{os.getpid()}"
    if tmp.is_symlink() or tmp.exists():
        tmp.unlink()
    os.symlink(f"{SNAPSHOTS}/{digest}", tmp)
    os.replace(tmp, root / CURRENT)


def prune(root: Path, keep: int) -> list[str]:
    """Remove all but the ``keep`` newest snapshots (never the one in use); their digests."""
    active = active_dir(root)
    removed = []
    for index, (digest, _) in enumerate(kept_snapshots(root)):
        folder = Path(root) / SNAPSHOTS / digest
        if index >= max(keep, 1) and folder != active:
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(digest)
    return removed


@contextmanager
def _locked(root: Path):
    """One import at a time per data folder (the CLI and the scheduled sync)."""
    with open(root / ".lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _place(target: Path, files: list[Path], *, link: bool) -> None:
    target.mkdir(parents=True, exist_ok=True)
    for index, file in enumerate(files):
        name = "all.zip" if file.suffix == ".zip" and len(files) == 1 else file.name
        dest = target / (name if not (target / name).exists() else f"{index}-{name}")
        if link:
            try:
                os.link(file, dest)
                continue
            except OSError:
                pass
        shutil.copy2(file, dest)


def _parts(path: Path, *, base: bool = False) -> dict[str, list[Path]]:
    """Ecosystem -> its files, for a zip, a JSON file or a folder.

    A folder holding ``*.json`` is one ecosystem (named by its records, else by the folder);
    a folder of folders or zips holds one ecosystem per child.
    """
    if path.is_file():
        if path.suffix == ".zip" or zipfile.is_zipfile(path):
            check_zip(path)
            return {_zip_ecosystem(path): [path]}
        if path.suffix == ".json":
            return {_json_ecosystem([path], path.parent.name): [path]}
        raise ImportFailed(f"{path} is not an OSV zip, JSON file or folder")
    if not path.is_dir():
        raise ImportFailed(f"{path} does not exist")
    own = sorted(p for p in path.glob("*.json") if p.is_file() and p.name not in RESERVED)
    if own and not base:
        return {_json_ecosystem(own, path.name): _all_json(path)}
    found: dict[str, list[Path]] = {}
    for child in _data_children(path):
        if child.is_dir():
            zips = sorted(child.glob("*.zip"))
            if zips:
                for archive in zips:
                    check_zip(archive)
                found.setdefault(child.name, []).extend(zips)
            elif any(child.rglob("*.json")):
                found.setdefault(child.name, []).extend(_all_json(child))
        elif child.suffix == ".zip":
            check_zip(child)
            found.setdefault(_zip_ecosystem(child), []).append(child)
    return found


def _all_json(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*.json") if p.is_file())


def check_zip(path: Path) -> None:
    """Raise ImportFailed unless ``path`` is a whole zip archive whose members all read back."""
    if not zipfile.is_zipfile(path):
        raise ImportFailed(f"{path.name} is not a complete zip archive (a truncated download?)")
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
    except (OSError, zipfile.BadZipFile, EOFError) as exc:
        raise ImportFailed(f"{path.name} is damaged: {exc}") from None
    if bad is not None:
        raise ImportFailed(f"{path.name} is damaged: {bad} does not match its checksum")


def _zip_ecosystem(path: Path) -> str:
    with zipfile.ZipFile(path) as archive:
        names = [n for n in archive.namelist() if n.endswith(".json")][:50]
        found = Counter(e for n in names for e in _record_ecosystems(archive.read(n)))
    if found:
        return found.most_common(1)[0][0]
    return path.stem if path.stem != "all" else (path.parent.name or "osv")


def _json_ecosystem(files: list[Path], fallback: str) -> str:
    found = Counter(e for f in files[:50] for e in _record_ecosystems(f.read_bytes()))
    return found.most_common(1)[0][0] if found else (fallback or "osv")


def _record_ecosystems(data: bytes) -> set[str]:
    try:
        raw = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        return set()  # reported with its path when the snapshot is loaded
    if not isinstance(raw, dict):
        return set()
    return {ecosystem_base(str((e.get("package") or {}).get("ecosystem") or ""))
            for e in raw.get("affected") or [] if isinstance(e, dict)} - {""}
