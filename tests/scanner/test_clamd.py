"""Running clamd (ops.clamd) and talking to it (scanner.engines.clamd)."""

from __future__ import annotations

import os
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from ops.clamd import prepare_database, wait_for_ping, write_config
from ops.services import free_port, spawn
from scanner.engines.clamav import LIMITS, SIGNATURE_DIR
from scanner.engines.clamd import ClamdTimeout, ClamdUnreachable, Session, request
from scanner.model import NEST, Settings
from scanner.unpack import Member
from scanner.virus import scan_members

ROOT = Path(__file__).resolve().parents[2]
EICAR = b"X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR-STAN" + b"DARD-ANTIVIRUS-TEST-FILE!$H+H*"


def config_lines(path: Path) -> dict[str, str]:
    pairs = (line.split(" ", 1) for line in path.read_text().splitlines() if line.strip())
    return {key: value for key, value in pairs}


# --- Configuration and database -------------------------------------------------------------


def test_config_sets_every_limit_explicitly(tmp_path):
    config = config_lines(write_config(tmp_path, port=3999, db_dir=tmp_path / "db"))

    for name, value in LIMITS.items():
        assert config[name] == str(value)
    assert config["MaxFileSize"] == str(2 * 1024**3 - 1)
    assert int(config["StreamMaxLength"]) >= int(config["MaxFileSize"])
    assert config["AlertExceedsMax"] == config["AlertEncrypted"] == "yes"
    assert config["Foreground"] == "yes" and config["ConcurrentDatabaseReload"] == "no"
    assert (config["TCPSocket"], config["TCPAddr"]) == ("3999", "127.0.0.1")
    assert "User" not in config and "LocalSocket" not in config
    for key in ("LogFile", "PidFile", "TemporaryDirectory"):
        assert config[key].startswith(str(tmp_path.resolve()))


def test_config_overrides_and_local_socket(tmp_path):
    path = write_config(tmp_path, socket_path=tmp_path / "clamd.ctl", db_dir=tmp_path / "db",
                        limits={"MaxFileSize": 1024, "StreamMaxLength": 2048})
    config = config_lines(path)

    assert (config["MaxFileSize"], config["StreamMaxLength"]) == ("1024", "2048")
    assert config["LocalSocket"] == str((tmp_path / "clamd.ctl").resolve())
    assert "TCPSocket" not in config
    with pytest.raises(ValueError):
        write_config(tmp_path, db_dir=tmp_path / "db")


def test_database_holds_assay_extra_and_official_files(tmp_path):
    official = tmp_path / "official"
    official.mkdir()
    (official / "daily.cvd").write_bytes(b"stand-in for the official data")
    (official / "freshclam.dat").write_bytes(b"not a database")
    extra = tmp_path / "extra"
    extra.mkdir()
    (extra / "assay.ndb").write_text("Extra.Clash:0:*:41414141\n")
    (extra / "site.hdb").write_text("0123456789abcdef0123456789abcdef:4:Site.Test\n")

    db = prepare_database(tmp_path / "work", [extra], official_dir=official)
    names = sorted(p.name for p in db.iterdir())

    assert names == sorted([
        "assay.hdb", "assay.ldb", "assay.ndb", "assay.yar", "daily.cvd",
        "extra0-assay.ndb", "site.hdb",
    ])  # yara/ rules need modules: only yara-python runs them
    assert (db / "daily.cvd").read_bytes() == b"stand-in for the official data"
    assert (db / "assay.ndb").read_bytes() == (SIGNATURE_DIR / "assay.ndb").read_bytes()

    (extra / "site.hdb").unlink()
    again = prepare_database(tmp_path / "work", [extra], official_dir=official)
    assert not (again / "site.hdb").exists()


# --- Running clamd --------------------------------------------------------------------------


def test_session_clamd_answers(clamd):
    assert request(clamd.address, "PING") == "PONG"
    assert request(clamd.address, "VERSION").startswith("ClamAV 1.")
    assert clamd.address.startswith("tcp://127.0.0.1:")


def test_clamd_on_a_local_socket(tmp_path):
    ctl = tmp_path / "clamd.ctl"
    db = prepare_database(tmp_path)
    config = write_config(tmp_path, socket_path=ctl, db_dir=db)
    proc = spawn(["clamd", f"--config-file={config}"], tmp_path, "clamd.out")
    try:
        deadline = time.monotonic() + 60
        while not ctl.exists() and time.monotonic() < deadline:
            assert proc.poll() is None, (tmp_path / "clamd.out").read_text()
            time.sleep(0.1)
        eicar = tmp_path / "eicar.com"
        eicar.write_bytes(EICAR)

        findings, engines = scan_members(
            [Member(eicar, f"p.zip{NEST}eicar.com", len(EICAR), 1, False)],
            Settings(clamd=f"unix://{ctl}"),
        )

        assert [f.signature for f in findings] == ["Assay.Test.EICAR"]
        assert engines["clamav"].startswith("ClamAV 1.")
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(15)


def test_module_entry_point_becomes_clamd(tmp_path):
    """``python -m ops.clamd`` (the Procfile line) execs clamd: the pid is clamd's."""
    port = free_port()
    env = {**os.environ, "ASSAY_CLAMD_PORT": str(port), "ASSAY_VAR": str(tmp_path / "var"),
           "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "ops.clamd"], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_ping(port, 120, proc)
        assert os.path.basename(os.readlink(f"/proc/{proc.pid}/exe")) == "clamd"
        assert (tmp_path / "var" / "clamd" / "clamd.conf").exists()
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) is not None


def test_stop_ends_clamd(tmp_path):
    from ops.clamd import start_clamd

    service = start_clamd(tmp_path)
    address = service.address
    service.stop()

    assert service.proc.poll() is not None
    with pytest.raises(ClamdUnreachable):
        request(address, "PING")


# --- The protocol, against a recorded clamd --------------------------------------------------


class RecordedClamd:
    """A stand-in clamd that answers each INSTREAM with the next recorded reply.

    It checks the framing (IDSESSION, chunk lengths, the zero-length end) and
    keeps the bytes it was sent. A reply of ``None`` means: never answer.
    """

    def __init__(self, replies: list[str | None], close_after_each: bool = False):
        self.replies = list(replies)
        self.close_after_each = close_after_each
        self.received: list[bytes] = []
        self.server = socket.create_server(("127.0.0.1", 0))
        self.address = f"tcp://127.0.0.1:{self.server.getsockname()[1]}"
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while self.replies:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            with conn:
                self._session(conn)

    def _session(self, conn: socket.socket) -> None:
        f = conn.makefile("rb")
        assert self._command(f) == b"zIDSESSION"
        n = 0
        while self.replies:
            command = self._command(f)
            if command != b"zINSTREAM":
                return
            data = bytearray()
            while size := struct.unpack("!I", f.read(4))[0]:
                data += f.read(size)
            self.received.append(bytes(data))
            n += 1
            reply = self.replies.pop(0)
            if reply is None:
                time.sleep(2)
                return
            conn.sendall(f"{n}: {reply}\0".encode())
            if self.close_after_each:
                return

    @staticmethod
    def _command(f) -> bytes:
        out = bytearray()
        while (c := f.read(1)) not in (b"\0", b""):
            out += c
        return bytes(out)

    def close(self) -> None:
        self.server.close()


@pytest.fixture
def sample(tmp_path) -> Path:
    path = tmp_path / "sample.bin"
    path.write_bytes(os.urandom(3 * 1024 * 1024 + 17))  # several chunks, the last one short
    return path


@pytest.mark.parametrize(
    "reply, kind, name",
    [
        ("stream: OK", "clean", None),
        ("stream: Win.Test.EICAR_HDB-1 FOUND", "virus", "Win.Test.EICAR_HDB-1"),
        ("stream: YARA.Assay_WebShell_PHP.UNOFFICIAL FOUND", "virus", "YARA.Assay_WebShell_PHP"),
        ("stream: Heuristics.Limits.Exceeded.MaxScanTime FOUND", "unscanned",
         "Heuristics.Limits.Exceeded.MaxScanTime"),
        ("stream: Heuristics.Encrypted.Zip FOUND", "unscanned", "Heuristics.Encrypted.Zip"),
        ("INSTREAM size limit exceeded. ERROR", "unscanned", None),
        ("stream: lstat() failed: No such file or directory. ERROR", "unscanned", None),
        ("something new", "unscanned", None),
    ],
)
def test_recorded_replies(sample, reply, kind, name):
    fake = RecordedClamd([reply])
    try:
        with Session(fake.address) as session:
            answer = session.scan_file(sample)
    finally:
        fake.close()

    assert (answer.kind, answer.name) == (kind, name)
    assert fake.received == [sample.read_bytes()]


def test_session_is_reused_and_reopened(sample, tmp_path):
    small = tmp_path / "small.txt"
    small.write_bytes(b"")
    fake = RecordedClamd(["stream: OK"] * 4, close_after_each=True)
    session = Session(fake.address)
    try:
        answers = [session.scan_file(p).kind for p in (sample, small, sample, small)]
    finally:
        session.close()
        fake.close()

    assert answers == ["clean"] * 4
    assert fake.received[1] == b""


def test_no_answer_is_a_timeout(sample):
    fake = RecordedClamd([None])
    try:
        with pytest.raises(ClamdTimeout), Session(fake.address, answer_timeout=0.5) as session:
            session.scan_file(sample)
    finally:
        fake.close()


def test_unreachable_address():
    with pytest.raises(ClamdUnreachable), Session(f"tcp://127.0.0.1:{free_port()}") as session:
        session.scan_file(Path(__file__))
    with pytest.raises(ValueError), Session("http://localhost:3310") as session:
        session.scan_file(Path(__file__))
