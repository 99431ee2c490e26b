"""Foreground entry points for the all-in-one deployment.

    python -m ops.run serve   # what `make run` does: prepare var/, then honcho start
    python -m ops.run redis   # Procfile: redis-server on REDIS_URL's port, data in var/redis
    python -m ops.run s3      # Procfile: SeaweedFS S3 on ASSAY_S3_ENDPOINT's port, data in var/s3

Every setting comes from the environment (see README, "Configuration"); the
secrets are generated once into ``var/secrets.env`` and reused.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

from ops import services

ROOT = Path(__file__).resolve().parent.parent
DEFAULTS = {
    "ASSAY_VAR": "var",
    "REDIS_URL": "redis://127.0.0.1:6390/0",
    "ASSAY_S3_ENDPOINT": "http://127.0.0.1:8333",
    "ASSAY_S3_BUCKET": "assay",
    "ASSAY_CLAMD": "tcp://127.0.0.1:3310",
    "ASSAY_HOST": "127.0.0.1",
    "PORT": "8000",
}
GENERATED_SECRETS = ("ASSAY_SECRET_KEY", "ASSAY_S3_ACCESS_KEY", "ASSAY_S3_SECRET_KEY")


def var_dir() -> Path:
    return (ROOT / os.environ.get("ASSAY_VAR", DEFAULTS["ASSAY_VAR"])).resolve()


def load_settings() -> None:
    """Fill ``os.environ`` with the defaults and the secrets of ``var/secrets.env``.

    Values already in the environment win, so an operator can override any of them.
    """
    for name, value in DEFAULTS.items():
        os.environ.setdefault(name, value)
    var = var_dir()
    os.environ["ASSAY_VAR"] = str(var)
    os.environ.setdefault("ASSAY_OSV_DIR", str(var / "osv"))
    # Several gunicorn workers must share one count of login attempts.
    os.environ.setdefault("ASSAY_RATELIMIT_STORAGE", os.environ["REDIS_URL"])
    for name, value in ensure_secrets(var / "secrets.env").items():
        os.environ.setdefault(name, value)


def ensure_secrets(path: Path) -> dict[str, str]:
    """Read ``path`` (KEY=value lines), adding any missing generated secret to it."""
    values = {}
    if path.exists():
        for line in path.read_text().splitlines():
            name, sep, value = line.partition("=")
            if sep and not name.startswith("#"):
                values[name.strip()] = value.strip()
    missing = {name: _new_secret(name) for name in GENERATED_SECRETS if name not in values}
    if missing:
        path.parent.mkdir(parents=True, exist_ok=True)
        values.update(missing)
        path.touch(mode=0o600)
        path.write_text("".join(f"{name}={value}\n" for name, value in values.items()))
        path.chmod(0o600)
    return values


def _new_secret(name: str) -> str:
    return secrets.token_hex(10) if name == "ASSAY_S3_ACCESS_KEY" else secrets.token_hex(32)


def loopback_port(url: str, what: str) -> int:
    """The port of ``url``, which must name this machine (we start the server here)."""
    parts = urlsplit(url)
    if parts.hostname not in ("127.0.0.1", "localhost") or not parts.port:
        raise SystemExit(f"{what}: {url} is not a 127.0.0.1 address with a port; "
                         "the all-in-one setup only starts local services")
    return parts.port


def run_redis() -> None:
    """Replace this process by redis-server, persisting to var/redis."""
    load_settings()
    port = loopback_port(os.environ["REDIS_URL"], "REDIS_URL")
    workdir = var_dir() / "redis"
    workdir.mkdir(parents=True, exist_ok=True)
    services.require_free_ports({"redis": port})
    args = services.redis_command(workdir, port, persistent=True)
    os.execvp(args[0], args)


def run_s3() -> None:
    """Replace this process by SeaweedFS ``weed mini``, data in var/s3."""
    load_settings()
    port = loopback_port(os.environ["ASSAY_S3_ENDPOINT"], "ASSAY_S3_ENDPOINT")
    ports = dict(services.S3_DEFAULT_PORTS)
    services.check_s3_ports(port, ports)
    args = services.s3_command(var_dir() / "s3", port, ports, os.environ["ASSAY_S3_ACCESS_KEY"],
                               os.environ["ASSAY_S3_SECRET_KEY"], os.environ["ASSAY_S3_BUCKET"])
    os.chdir(var_dir() / "s3")
    os.execvp(args[0], args)


def local_ports() -> dict[str, int]:
    """Every port the all-in-one setup listens on, by what listens."""
    s3 = loopback_port(os.environ["ASSAY_S3_ENDPOINT"], "ASSAY_S3_ENDPOINT")
    return {
        "web (PORT)": int(os.environ["PORT"]),
        "redis (REDIS_URL)": loopback_port(os.environ["REDIS_URL"], "REDIS_URL"),
        "clamd (ASSAY_CLAMD)": loopback_port(os.environ["ASSAY_CLAMD"], "ASSAY_CLAMD"),
        "s3 (ASSAY_S3_ENDPOINT)": s3,
        **{f"s3 {name}": port for name, port in services.S3_DEFAULT_PORTS.items()},
        "s3 admin grpc": services.S3_DEFAULT_PORTS["admin.port"] + services.ADMIN_GRPC_OFFSET,
    }


def flask(*args: str, capture: bool = False) -> str:
    """Run ``flask --app portal ARGS`` in the venv; fail loudly."""
    cmd = [str(Path(sys.executable).with_name("flask")), "--app", "portal", *args]
    result = subprocess.run(cmd, check=False, cwd=ROOT, text=True, stdout=subprocess.PIPE if capture else None)
    if result.returncode != 0:
        raise SystemExit(f"`flask {' '.join(args)}` failed with exit {result.returncode}")
    return result.stdout or ""


def seed_osv() -> None:
    """Give a fresh install the bundled OSV records, so scans match something offline."""
    target = Path(os.environ["ASSAY_OSV_DIR"])
    if target.exists() and any(target.iterdir()):
        return
    source = ROOT / "tests" / "data" / "corpus" / "osv"
    if source.is_dir():
        flask("osv", "import", str(source))
        print(f"seeded vulnerability data into {target} from {source.relative_to(ROOT)}")


def serve() -> int:
    """Prepare var/, migrate, ensure an operator, then run the Procfile until Ctrl-C."""
    load_settings()
    os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    os.environ["ASSAY_CLAMD_PORT"] = str(loopback_port(os.environ["ASSAY_CLAMD"], "ASSAY_CLAMD"))
    try:
        services.require_free_ports(local_ports())
    except services.PortBusyError as exc:
        raise SystemExit(f"{exc}\nStop whatever uses them (an earlier `make run`?) "
                         "or set the variables above to other ports.") from None
    var_dir().mkdir(parents=True, exist_ok=True)
    flask("db", "upgrade")
    login = flask("users", "ensure-admin", capture=True).strip()
    seed_osv()
    return run_honcho(login)


def run_honcho(login: str) -> int:
    url = f"http://{os.environ['ASSAY_HOST']}:{os.environ['PORT']}/"
    honcho = [str(Path(sys.executable).with_name("honcho")), "start", "-f", str(ROOT / "Procfile"),
              "-d", str(ROOT), "-p", os.environ["PORT"]]
    proc = subprocess.Popen(honcho, cwd=ROOT)
    try:
        services.wait_for_port(int(os.environ["PORT"]), 120, proc)
        login = "\n".join(f"  {line.strip()}" for line in login.splitlines())
        print(f"\n  Assay is running at {url}\n{login}\n  Ctrl-C stops everything.\n",
              flush=True)
        return proc.wait()
    except KeyboardInterrupt:
        # The terminal sent SIGINT to honcho too; it stops its processes itself.
        return _wait_quietly(proc)
    except (TimeoutError, RuntimeError) as exc:
        print(f"web did not come up: {exc}", file=sys.stderr)
        proc.terminate()
        _wait_quietly(proc)
        return 1


def _wait_quietly(proc: subprocess.Popen) -> int:
    while True:
        try:
            return proc.wait()
        except KeyboardInterrupt:
            time.sleep(0.1)


COMMANDS = {"serve": serve, "redis": run_redis, "s3": run_s3}


def main(argv: list[str]) -> int:
    if len(argv) != 1 or argv[0] not in COMMANDS:
        print(f"usage: python -m ops.run {{{'|'.join(COMMANDS)}}}", file=sys.stderr)
        return 2
    return COMMANDS[argv[0]]() or 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
