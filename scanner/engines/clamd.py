"""A small client for clamd's socket protocol.

Commands are the null-terminated ``z`` forms (``zVERSION\\0``). Files go to
clamd as ``INSTREAM`` chunks, so a worker need not share a disk with clamd.
Each :class:`Session` keeps one ``IDSESSION`` open and sends one command at a
time on it: thousands of small files do not cost thousands of TCP connections.
"""

from __future__ import annotations

import os
import socket
import struct
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

from .clamav import LIMITS, Answer, parse_reply

CHUNK = 1024**2
#: Files up to this size are sent with one ``sendall``.
SMALL = 256 * 1024
#: How long to wait for an answer: clamd gives up on a file after MaxScanTime.
ANSWER_TIMEOUT = LIMITS["MaxScanTime"] / 1000 + 60
CONNECT_TIMEOUT = 10.0


class ClamdUnreachable(ConnectionError):
    """clamd could not be connected to (refused, no such socket, no route)."""


class FileChanged(OSError):
    """The file changed size while it was streamed; the session is out of step."""


class ClamdTimeout(TimeoutError):
    """clamd took longer than the scan time limit to answer."""


def parse_address(address: str) -> tuple[int, str | tuple[str, int]]:
    """``tcp://host:port`` or ``unix:///path`` -> (socket family, socket address)."""
    parts = urlsplit(address)
    if parts.scheme == "tcp" and parts.hostname and parts.port:
        family = socket.AF_INET6 if ":" in parts.hostname else socket.AF_INET
        return family, (parts.hostname, parts.port)
    if parts.scheme == "unix" and parts.path:
        return socket.AF_UNIX, parts.path
    raise ValueError(f"not a clamd address (tcp://host:port or unix:///path): {address!r}")


def connect(address: str, timeout: float = CONNECT_TIMEOUT) -> socket.socket:
    family, where = parse_address(address)
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    if family != socket.AF_UNIX:
        # Each file is a short request/answer exchange: without this, Nagle's
        # algorithm and delayed ACKs add ~40 ms to every small file.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        sock.connect(where)
    except OSError as exc:
        sock.close()
        raise ClamdUnreachable(f"clamd unreachable at {address}: {exc}") from exc
    return sock


def _read_reply(sock: socket.socket) -> str:
    data = bytearray()
    while not data.endswith(b"\0"):
        try:
            chunk = sock.recv(4096)
        except socket.timeout as exc:
            raise ClamdTimeout(f"clamd did not answer within {sock.gettimeout():.0f}s") from exc
        if not chunk:
            raise ConnectionResetError("clamd closed the connection without an answer")
        data += chunk
    return data[:-1].decode("utf-8", "replace")


def request(address: str, command: str, timeout: float = CONNECT_TIMEOUT) -> str:
    """One command on its own connection (``PING``, ``VERSION``); returns the answer."""
    with connect(address, timeout) as sock:
        sock.sendall(b"z" + command.encode() + b"\0")
        return _read_reply(sock)


class Session:
    """One open ``IDSESSION``; use from one thread at a time."""

    def __init__(self, address: str, answer_timeout: float = ANSWER_TIMEOUT):
        self.address = address
        self.answer_timeout = answer_timeout
        self._sock: socket.socket | None = None

    def scan_file(self, path: Path) -> Answer:
        """Stream ``path`` to clamd and return its answer.

        A dropped session (clamd closes idle ones, and closes after an error)
        is reopened once. Raises :class:`ClamdUnreachable` or
        :class:`ClamdTimeout` when clamd cannot give an answer, and
        ``OSError`` when the file cannot be read or the connection keeps failing.
        """
        with open(path, "rb") as f:
            return self._retrying_once(lambda: self._scan_once(f))

    def scan_path(self, path: Path) -> Answer:
        """Ask clamd to read ``path`` itself (``SCAN``): no copy through the socket.

        Only for a clamd that shares this file system and may read the file;
        clamd's "cannot read" is an ``unscanned`` answer without a name, and
        an answer about any other path is one too. Raises like :meth:`scan_file`.
        """
        path = os.path.abspath(path)
        return self._retrying_once(lambda: self._scan_path_once(path))

    def _retrying_once(self, attempt: Callable[[], Answer]) -> Answer:
        """Run ``attempt``; after a dropped session (not a timeout, not an unreachable
        clamd) reopen and run it once more. The session is closed after any failure."""
        try:
            return attempt()
        except ClamdTimeout:
            self.close()
            raise
        except OSError as exc:
            self.close()
            if isinstance(exc, ClamdUnreachable):
                raise
        try:
            return attempt()
        except OSError:
            self.close()
            raise

    def _scan_path_once(self, path: str) -> Answer:
        sock = self._open()
        sock.sendall(b"zSCAN " + os.fsencode(path) + b"\0")
        reply = _read_reply(sock)
        _, _, reply = reply.partition(": ")  # "<id>: <path>: OK"
        prefix = f"{path}: "
        if not reply.startswith(prefix):
            self.close()
            return Answer("unscanned", None, f"unexpected ClamAV answer: {reply[:200]!r}")
        answer = parse_reply(reply[len(prefix):])
        if answer.kind == "unscanned" and answer.name is None:
            self.close()  # clamd ends a session after an error
        return answer

    def _scan_once(self, f) -> Answer:
        sock = self._open()
        sock.sendall(b"zINSTREAM\0")
        try:
            self._send_chunks(sock, f)
        except (BrokenPipeError, ConnectionResetError):
            # clamd answers and hangs up early when the stream is too long.
            return self._answer(sock)
        return self._answer(sock)

    @staticmethod
    def _send_chunks(sock: socket.socket, f) -> None:
        remaining = os.fstat(f.fileno()).st_size
        if remaining <= SMALL:
            # Most files are small: one send for length, bytes and terminator.
            data = os.pread(f.fileno(), remaining + 1, 0)
            if len(data) != remaining:
                raise FileChanged(f"{f.name} changed size while it was being sent to clamd")
            head = struct.pack("!I", remaining) if remaining else b""
            sock.sendall(head + data + struct.pack("!I", 0))
            return
        offset = 0
        while remaining:
            size = min(CHUNK, remaining)
            sock.sendall(struct.pack("!I", size))
            sent = sock.sendfile(f, offset, size)
            if sent != size:
                raise FileChanged(f"{f.name} shrank while it was being sent to clamd")
            offset += size
            remaining -= size
        sock.sendall(struct.pack("!I", 0))

    def _answer(self, sock: socket.socket) -> Answer:
        reply = _read_reply(sock)
        _, _, reply = reply.partition(": ")  # "<id>: stream: OK"
        if reply.startswith("stream: "):
            reply = reply[len("stream: "):]
        answer = parse_reply(reply)
        if answer.kind == "unscanned" and answer.name is None:
            self.close()  # clamd ends a session after an error
        return answer

    def _open(self) -> socket.socket:
        if self._sock is None:
            sock = connect(self.address)
            sock.settimeout(self.answer_timeout)
            sock.sendall(b"zIDSESSION\0")
            self._sock = sock
        return self._sock

    def __enter__(self) -> "Session":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def close(self) -> None:
        if self._sock is not None:
            try:
                self._sock.sendall(b"zEND\0")
            except OSError:
                pass
            self._sock.close()
            self._sock = None
