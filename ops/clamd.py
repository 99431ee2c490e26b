"""Run clamd with Assay's signatures and explicit limits.

``start_clamd`` starts a foreground clamd on a loopback TCP port and returns
once it answers ``PING`` (used by the tests and by tools that need a private
daemon). ``python -m ops.clamd`` is the Procfile line: it prepares the same
configuration under ``$ASSAY_VAR/clamd`` and becomes clamd, so signals reach it.

The database directory holds Assay's signature files and, where freshclam has
fetched them, the official ClamAV databases (hard-linked, else copied): clamd
reads one directory only. Official updates take effect on the next start.
"""

from __future__ import annotations

import os
import shutil
import socket
import time
from collections.abc import Iterable, Mapping
from pathlib import Path

from scanner.engines.clamav import (
    ALERTS,
    LIMITS,
    OFFICIAL_DB_DIR,
    SIGNATURE_DIR,
    STREAM_MAX_LENGTH,
    database_files,
    official_files,
)

from .services import Service, free_port, spawn

#: Loading the official databases takes tens of seconds on a small VM.
START_TIMEOUT = 120.0


def prepare_database(
    workdir: Path, extra_dirs: Iterable[Path] = (), *, official_dir: Path = OFFICIAL_DB_DIR
) -> Path:
    """``workdir/db`` holding Assay's signatures, ``extra_dirs``' and the official data.

    Files that no longer exist in a source are removed, so a dropped signature
    file stops matching on the next start.
    """
    db = Path(workdir) / "db"
    db.mkdir(parents=True, exist_ok=True)
    wanted: dict[str, Path] = {}
    for source in [*database_files(SIGNATURE_DIR), *official_files(official_dir)]:
        wanted[source.name] = source
    for n, directory in enumerate(extra_dirs):
        for source in database_files(Path(directory)):
            name = source.name if source.name not in wanted else f"extra{n}-{source.name}"
            wanted[name] = source
    for stale in db.iterdir():
        if stale.name not in wanted:
            stale.unlink()
    for name, source in wanted.items():
        _link_or_copy(source, db / name)
    return db


def _link_or_copy(source: Path, target: Path) -> None:
    src = source.stat()
    if target.exists():
        dst = target.stat()
        if (dst.st_ino == src.st_ino and dst.st_dev == src.st_dev) or (
            dst.st_size == src.st_size and dst.st_mtime_ns == src.st_mtime_ns
        ):
            return
        target.unlink()
    try:
        os.link(source, target)
    except OSError:  # another file system, or protected_hardlinks on a root-owned file
        shutil.copy2(source, target)


def write_config(
    workdir: Path,
    *,
    port: int | None = None,
    socket_path: Path | None = None,
    db_dir: Path,
    limits: Mapping[str, int] | None = None,
) -> Path:
    """Write ``workdir/clamd.conf``.

    ``limits`` overrides entries of the limits table (and ``StreamMaxLength``),
    for a daemon with deliberately small limits.
    """
    workdir = Path(workdir).resolve()
    tmp = workdir / "tmp"
    tmp.mkdir(parents=True, exist_ok=True)
    effective = {**LIMITS, **(limits or {})}
    stream_max = effective.pop("StreamMaxLength", max(STREAM_MAX_LENGTH, effective["MaxFileSize"]))
    lines = [
        "Foreground yes",
        f"LogFile {workdir / 'clamd.log'}",
        "LogTime yes",
        "LogFileMaxSize 20M",
        "LogRotate yes",
        f"PidFile {workdir / 'clamd.pid'}",
        f"TemporaryDirectory {tmp}",
        f"DatabaseDirectory {Path(db_dir).resolve()}",
        # Two cores: a few scanning threads; queued work waits rather than thrashing.
        "MaxThreads 4",
        "MaxQueue 100",
        "MaxConnectionQueueLength 64",
        "ReadTimeout 300",
        "CommandReadTimeout 30",
        "IdleTimeout 120",
        "SelfCheck 3600",
        # One engine in memory: a reload pauses scanning instead of doubling RAM.
        "ConcurrentDatabaseReload no",
        "ExitOnOOM yes",
        f"StreamMaxLength {stream_max}",
        *(f"{name} {value}" for name, value in effective.items()),
        *(f"{name} yes" for name in ALERTS),
        "AlertBrokenExecutables no",
        "Bytecode yes",
        "DetectPUA no",
    ]
    if port is not None:
        lines += [f"TCPSocket {port}", "TCPAddr 127.0.0.1"]
    if socket_path is not None:
        lines += [
            f"LocalSocket {Path(socket_path).resolve()}",
            "LocalSocketMode 660",
            "FixStaleSocket yes",
        ]
    if port is None and socket_path is None:
        raise ValueError("clamd needs a TCP port or a local socket")
    config = workdir / "clamd.conf"
    config.write_text("\n".join(lines) + "\n")
    return config


def clamd_executable() -> str:
    for candidate in (shutil.which("clamd"), "/usr/sbin/clamd"):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    raise FileNotFoundError("clamd is not installed (Debian: apt-get install clamav-daemon)")


def start_clamd(
    workdir: Path,
    port: int | None = None,
    *,
    limits: Mapping[str, int] | None = None,
    extra_dirs: Iterable[Path] = (),
    timeout: float = START_TIMEOUT,
) -> Service:
    """A foreground clamd on ``127.0.0.1:port`` (a free one by default), answering PING."""
    workdir = Path(workdir).resolve()
    port = port or free_port()
    db = prepare_database(workdir, extra_dirs)
    config = write_config(workdir, port=port, db_dir=db, limits=limits)
    proc = spawn([clamd_executable(), f"--config-file={config}"], workdir, "clamd.out")
    address = f"tcp://127.0.0.1:{port}"
    service = Service("clamd", address, proc, workdir, {"config": config, "db": db})
    try:
        wait_for_ping(port, timeout, proc)
    except BaseException:
        service.stop()
        raise
    return service


def wait_for_ping(port: int, timeout: float, proc=None) -> None:
    """Wait until clamd on ``port`` answers PING (it listens before its databases are loaded)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"clamd exited with {proc.returncode}; see clamd.log in its workdir")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
                sock.sendall(b"zPING\0")
                sock.settimeout(5)
                if sock.recv(16).startswith(b"PONG"):
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise TimeoutError(f"clamd did not answer PING on 127.0.0.1:{port} after {timeout:.0f}s")


def main() -> None:
    """Become clamd, configured from ``ASSAY_CLAMD_PORT`` and ``ASSAY_VAR``."""
    port = int(os.environ.get("ASSAY_CLAMD_PORT", "3310"))
    workdir = (Path(os.environ.get("ASSAY_VAR", "var")) / "clamd").resolve()
    extra = [Path(p) for p in os.environ.get("ASSAY_SIGNATURE_DIRS", "").split(os.pathsep) if p]
    db = prepare_database(workdir, extra)
    config = write_config(workdir, port=port, db_dir=db)
    executable = clamd_executable()
    os.execv(executable, [executable, f"--config-file={config}"])


if __name__ == "__main__":
    main()
