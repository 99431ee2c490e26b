"""What every format back end shares: problems, the byte budget, tool runs, harvesting.

External tools never write into the caller's ``outdir`` directly. They run in a
private staging directory next to it; :func:`harvest` then walks the staging tree
with ``lstat`` and moves in regular files and directories only. Symbolic links,
device nodes, sockets and FIFOs carry no bytes to scan and are not created;
set-id and sticky bits never survive.
"""

from __future__ import annotations

import os
import selectors
import shutil
import signal
import stat
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from scanner.model import Limits

CHUNK = 1024 * 1024
#: How often a running tool's output directory is measured against its cap, in seconds.
WATCH_INTERVAL = 1.0


@dataclass(frozen=True)
class Problem:
    """Something inside a container that was not examined, and why."""

    path: str  # path inside the container ("" for the whole container)
    reason: str  # one line, meant for a seller


class LimitExceeded(Exception):
    """Raised inside a back end when the budget is spent; turned into a Problem."""


class Budget:
    """Counts apparent bytes and members written for one container against the limits.

    The cap is the scratch space the package has left (``limits.max_total_bytes``, as
    the unpacker hands it over), not a multiple of the container's size: an image is
    bounded by what it holds and by the disk, and its empty blocks are holes.
    ``source_size`` is accepted for the callers' sake and not used.
    """

    def __init__(self, limits: Limits, source_size: int = 0):
        self.limits = limits
        self.members = 0
        self.total = 0
        self.cap = limits.max_total_bytes

    def file_fits(self, size: int) -> str | None:
        """The reason a file of ``size`` bytes cannot be written, or None."""
        if size > self.limits.max_file_bytes:
            return f"file of {size} bytes is over the {self.limits.max_file_bytes}-byte limit"
        if self.total + size > self.cap:
            return f"content over the {self.cap}-byte limit for this container"
        if self.members + 1 > self.limits.max_members:
            return f"more than {self.limits.max_members} members"
        return None

    def take(self, size: int) -> None:
        reason = self.file_fits(size)
        if reason:
            raise LimitExceeded(reason)
        self.members += 1
        self.total += size

    def remaining(self) -> int:
        return max(0, min(self.cap - self.total, self.limits.max_file_bytes))


@dataclass(frozen=True)
class ToolResult:
    returncode: int | None  # None: killed (timeout, or output or files over their cap)
    stdout: str
    stderr: str
    over_cap: bool = False  # killed because what it wrote passed ``watch``'s cap
    over_output: bool = False  # killed because it printed more than its output cap

    @property
    def timed_out(self) -> bool:
        return self.returncode is None and not self.over_cap and not self.over_output


def tree_size(root: Path) -> int:
    """Bytes the regular files under ``root`` take on disk (links not followed; holes in
    sparse files cost nothing)."""
    total = 0
    stack = [str(root)]
    while stack:
        try:
            entries = list(os.scandir(stack.pop()))
        except OSError:
            continue
        for e in entries:
            try:
                if e.is_dir(follow_symlinks=False):
                    stack.append(e.path)
                elif e.is_file(follow_symlinks=False):
                    st = e.stat(follow_symlinks=False)
                    total += min(st.st_size, st.st_blocks * 512)
            except OSError:
                continue
    return total


#: The launcher that sets a tool's resource limits before it starts (util-linux).
PRLIMIT = "prlimit"


def run_tool(
    argv: list[str],
    *,
    cwd: Path | None = None,
    timeout: float = 300,
    max_file_bytes: int | None = None,
    stdin_path: Path | None = None,
    watch: tuple[Path, int] | None = None,
    env: dict[str, str] | None = None,
    limits: Limits | None = None,
) -> ToolResult:
    """Run an external tool in its own process group with a wall-clock timeout.

    On timeout the whole group is killed. The tool starts under ``prlimit``, which
    sets its limits before it runs (no code runs between fork and exec in this
    threaded process): its address space (RLIMIT_AS, ``limits.max_tool_memory_bytes``:
    past it, its allocations fail) and, with ``max_file_bytes``, any single file it
    writes (RLIMIT_FSIZE). Each of stdout and stderr is kept up to
    ``limits.max_tool_output_bytes``; a tool printing more is stopped (``over_output``).
    ``watch=(directory, cap)`` kills the tool once the files under ``directory`` pass
    ``cap`` bytes, so a lying header cannot fill the disk. ``env`` adds to the
    environment the tool inherits.
    """
    limits = limits or Limits()
    launcher = shutil.which(PRLIMIT)
    if launcher is None:
        return ToolResult(127, "", f"{argv[0]}: not run: {PRLIMIT} (util-linux) is missing")
    memory = limits.max_tool_memory_bytes
    bounds = [f"--as={memory}:{memory}"]
    if max_file_bytes is not None:
        cap = max(1, max_file_bytes + 1)
        bounds.append(f"--fsize={cap}:{cap}")
    stdin = open(stdin_path, "rb") if stdin_path else subprocess.DEVNULL
    try:
        # restore_signals (the default) gives the tool SIGXFSZ's default action back
        proc = subprocess.Popen(
            [launcher, *bounds, "--", *argv],
            cwd=cwd,
            stdin=stdin,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
            env={**os.environ, "LC_ALL": "C.UTF-8", **(env or {})},
        )
    except OSError as exc:
        if stdin_path:
            stdin.close()
        return ToolResult(127, "", f"{argv[0]}: {exc.strerror or exc}")
    try:
        code, out, err, over, loud = _wait(proc, time.monotonic() + timeout, watch,
                                           limits.max_tool_output_bytes)
    finally:
        if stdin_path:
            stdin.close()
    stderr = _text(err)
    if loud:
        stderr += f"\n{argv[0]}: stopped: output over the {limits.max_tool_output_bytes}-byte limit"
    elif code is not None and code < 0:
        name = signal.Signals(-code).name if -code in signal.valid_signals() else str(-code)
        stderr += (f"\n{argv[0]}: ended by {name} (memory limit {memory} bytes,"
                   f" file size limit {max_file_bytes if max_file_bytes is not None else 'none'})")
    elif code == 127 and not out and "prlimit: failed to execute" in stderr:
        stderr = f"{argv[0]}: not found"
    return ToolResult(code, _text(out), stderr, over, loud)


def _wait(proc: subprocess.Popen, deadline: float, watch: tuple[Path, int] | None,
          max_output: int) -> tuple[int | None, bytes, bytes, bool, bool]:
    """Read the tool's output until it ends, is out of time, writes past ``watch``'s cap
    or prints past ``max_output``: (return code or None when killed, stdout, stderr,
    over the watch cap, over the output cap)."""
    buffers = {proc.stdout: bytearray(), proc.stderr: bytearray()}
    open_pipes = {proc.stdout, proc.stderr}
    over = loud = False
    next_watch = time.monotonic() + WATCH_INTERVAL
    with selectors.DefaultSelector() as selector:
        for pipe in open_pipes:
            selector.register(pipe, selectors.EVENT_READ)
        while open_pipes:
            now = time.monotonic()
            if now >= deadline:
                break
            step = deadline - now
            if watch is not None:
                step = min(step, max(0.0, next_watch - now))
            for key, _ in selector.select(timeout=max(0.01, step)):
                chunk = os.read(key.fileobj.fileno(), CHUNK)
                if not chunk:
                    selector.unregister(key.fileobj)
                    open_pipes.discard(key.fileobj)
                    continue
                kept = buffers[key.fileobj]
                room = max(0, max_output - len(kept))
                kept += chunk[:room]
                loud = loud or len(chunk) > room
            if loud:
                break
            if watch is not None and time.monotonic() >= next_watch:
                next_watch = time.monotonic() + WATCH_INTERVAL
                if tree_size(watch[0]) > watch[1]:
                    over = True
                    break
    if open_pipes or loud or over:
        # out of time, or over a cap: the whole group goes
        try:
            code = proc.wait(timeout=0) if not (loud or over) else None
        except subprocess.TimeoutExpired:
            code = None
        if code is None:
            _kill_group(proc)
    else:
        # both pipes closed: the tool has ended (or closed them); wait for it to exit
        try:
            code = proc.wait(timeout=max(0.01, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            code = None
            _kill_group(proc)
    proc.wait()
    proc.stdout.close()
    proc.stderr.close()
    return code, bytes(buffers[proc.stdout]), bytes(buffers[proc.stderr]), over, loud


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _text(data: bytes) -> str:
    return data.decode("utf-8", "replace")


def staging_dir(outdir: Path) -> Path:
    """A private, empty directory beside ``outdir`` (same file system, so moves are renames)."""
    return Path(tempfile.mkdtemp(prefix=".stage-", dir=outdir.absolute().parent))


def remove_tree(path: Path) -> None:
    """Remove a staging tree, whatever modes a tool left on it."""

    def fix(func, name, _exc):  # noqa: ANN001 - shutil's onerror signature
        try:
            os.chmod(os.path.dirname(name), 0o700)
            func(name)
        except OSError:
            pass

    for dirpath, dirnames, _ in os.walk(path):
        for d in dirnames:
            p = os.path.join(dirpath, d)
            if not os.path.islink(p):
                try:
                    os.chmod(p, 0o700)
                except OSError:
                    pass
    shutil.rmtree(path, onerror=fix)


def file_mode(st_mode: int) -> int:
    """0o755 for anything executable, 0o644 otherwise: no set-id, sticky or odd bits."""
    return 0o755 if st_mode & 0o111 else 0o644


def harvest(stage: Path, outdir: Path, budget: Budget, prefix: str = "") -> list[Problem]:
    """Move regular files and directories from ``stage`` into ``outdir``.

    Walks with ``lstat``, never following a link. Everything that is not a regular
    file or directory is dropped (it has no content to scan). Files over the
    budget are deleted with a Problem. A file with several hard links is copied
    so that nothing in ``outdir`` shares an inode with anything else.
    """
    problems: list[Problem] = []
    outdir.mkdir(parents=True, exist_ok=True)
    for dirpath, dirnames, filenames in os.walk(stage):
        rel_dir = os.path.relpath(dirpath, stage)
        dst_dir = outdir if rel_dir == "." else outdir / rel_dir
        for name in sorted(dirnames):
            src = os.path.join(dirpath, name)
            st = os.lstat(src)
            if stat.S_ISDIR(st.st_mode):
                os.chmod(src, 0o700)
                (dst_dir / name).mkdir(exist_ok=True)
        dirnames[:] = [d for d in dirnames if stat.S_ISDIR(os.lstat(os.path.join(dirpath, d)).st_mode)]
        for name in sorted(filenames):
            src = os.path.join(dirpath, name)
            rel = _join(prefix, os.path.normpath(os.path.join(rel_dir, name)))
            st = os.lstat(src)
            if not stat.S_ISREG(st.st_mode):
                continue
            reason = budget.file_fits(st.st_size)
            if reason:
                problems.append(Problem(rel, reason))
                os.unlink(src)
                continue
            budget.take(st.st_size)
            dst = dst_dir / name
            if st.st_nlink > 1:
                shutil.copyfile(src, dst, follow_symlinks=False)
                os.unlink(src)
            else:
                os.replace(src, dst)
            os.chmod(dst, file_mode(st.st_mode))
    return problems


def _join(prefix: str, rel: str) -> str:
    rel = rel.replace(os.sep, "/")
    return f"{prefix}/{rel}" if prefix else rel


def safe_relpath(name: str) -> str | None:
    """A member name as a clean relative path, or None if it would escape."""
    name = name.replace("\\", "/")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if not parts or any(p == ".." for p in parts) or any("\x00" in p for p in parts):
        return None
    return "/".join(parts)


def write_stream(src, dst: Path, size: int, budget: Budget, mode: int = 0o644) -> None:
    """Copy ``size`` bytes from a file object into a new regular file ``dst``.

    Counts against ``budget`` first; never follows a link at ``dst``.
    """
    budget.take(size)
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
    fd = os.open(dst, flags, 0o600)
    with os.fdopen(fd, "wb") as out:
        left = size
        while left > 0:
            chunk = src.read(min(CHUNK, left))
            if not chunk:
                break
            out.write(chunk)
            left -= len(chunk)
    os.chmod(dst, mode)


def write_bytes(dst: Path, data: bytes, budget: Budget, mode: int = 0o644) -> None:
    import io

    write_stream(io.BytesIO(data), dst, len(data), budget, mode)
