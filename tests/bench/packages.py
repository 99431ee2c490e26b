"""Generated "mixed" packages for the benchmarks, cached by size and seed.

A mixed package is a ``.tar.gz`` shaped like a real seller's application:
many small source and text files, a few jars (some nested in a zip or a war)
with ``pom.properties``, the Python ``dist-info`` and ``node_modules`` files of
the corpus packages, incompressible blobs of 50–200 MB, and the EICAR test
string in one file two containers deep. The same size and seed always give
the same bytes, so reruns reuse ``var/bench/cache/``.
"""

from __future__ import annotations

import io
import os
import random
import re
import shutil
import subprocess
import tarfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CACHE = ROOT / "var" / "bench" / "cache"
CORPUS = ROOT / "tests" / "data" / "corpus" / "packages"
#: Bump when the recipe changes, so a stale cached package is not reused.
RECIPE = 1
SEED = 20260
MB = 1024**2
#: Where the EICAR file sits (its location inside the package).
EICAR_LOCATION = "mixed/lib/tools-bundle.zip!/tools/probe.jar!/samples/eicar.com"
# Split so that this source file is not itself a test signature.
EICAR = b"X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR-STAN" + b"DARD-ANTIVIRUS-TEST-FILE!$H+H*"

_WORDS = [
    "def", "class", "return", "import", "from", "self", "value", "result", "items",
    "config", "request", "response", "handler", "client", "server", "buffer", "stream",
    "index", "count", "total", "offset", "length", "error", "public", "private", "static",
    "final", "void", "int", "long", "string", "bool", "func", "var", "let", "const",
    "async", "await", "if", "else", "for", "while", "try", "except", "raise", "yield",
    "lambda", "with", "open", "read", "write", "close",
]


def parse_size(text: str) -> int:
    """``100m`` / ``1g`` / ``5g`` -> bytes."""
    match = re.fullmatch(r"(\d+(?:\.\d+)?)([kmg])", text.strip().lower())
    if not match:
        raise ValueError(f"not a size like 100m or 1g: {text!r}")
    return int(float(match[1]) * {"k": 1024, "m": MB, "g": 1024 * MB}[match[2]])


def mixed_package(size: str, seed: int = SEED) -> Path:
    """The cached mixed package of about ``size`` (``100m``, ``1g``, ``5g``); built when missing."""
    path = CACHE / f"mixed-{size}-s{seed}-r{RECIPE}.tar.gz"
    if path.exists():
        return path
    CACHE.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    _write(partial, parse_size(size), random.Random(f"{seed}-{size}"))
    partial.rename(path)
    return path


def _write(path: Path, target: int, rng: random.Random) -> None:
    """Write the tar stream through ``gzip -6`` (the common packaging default)."""
    with open(path, "wb") as out:
        gz = subprocess.Popen(["gzip", "-6", "-n", "-c"], stdin=subprocess.PIPE, stdout=out)
        try:
            with tarfile.open(fileobj=gz.stdin, mode="w|", format=tarfile.PAX_FORMAT) as tar:
                for name, data in _entries(target, rng):
                    _add(tar, name, data)
        finally:
            gz.stdin.close()
            if gz.wait() != 0:
                raise RuntimeError("gzip failed while generating a benchmark package")


def _add(tar: tarfile.TarFile, name: str, data) -> None:
    info = tarfile.TarInfo(f"mixed/{name}")
    info.mtime = 1_700_000_000
    info.mode = 0o644
    if isinstance(data, bytes):
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    else:  # (size, chunks): a blob too large to hold in memory
        info.size, chunks = data
        tar.addfile(info, _ChunkReader(chunks))


class _ChunkReader:
    def __init__(self, chunks):
        self.chunks = iter(chunks)
        self.buffer = b""

    def read(self, n: int = -1) -> bytes:
        while len(self.buffer) < n:
            chunk = next(self.chunks, None)
            if chunk is None:
                break
            self.buffer += chunk
        data, self.buffer = self.buffer[:n], self.buffer[n:]
        return data


def _entries(target: int, rng: random.Random):
    """(name, bytes | (size, chunks)) for every file; compressed size lands near ``target``."""
    blob_budget = int(target * 0.8)
    text_budget = int(target * 0.5)  # raw text bytes; gzip shrinks them about fivefold
    jar_count = max(4, target // (40 * MB))
    yield from _corpus_files()
    yield from _jars(rng, jar_count)
    yield from _text_files(rng, text_budget)
    yield from _blobs(rng, blob_budget)


def _corpus_files():
    """The corpus' Python and npm packages, as three services would ship them."""
    for service in ("billing", "search", "gateway"):
        for package in ("pkg-a-python-app.tar.gz", "pkg-b-node-app.zip"):
            for name, data in _members(CORPUS / package):
                yield f"services/{service}/{name}", data


def _members(path: Path):
    if path.suffix == ".zip":
        with zipfile.ZipFile(path) as zf:
            for info in zf.infolist():
                if not info.is_dir():
                    yield info.filename, zf.read(info)
    else:
        with tarfile.open(path) as tf:
            for info in tf:
                if info.isfile():
                    yield info.name, tf.extractfile(info).read()


def _jars(rng: random.Random, count: int):
    """Jars with pom.properties: loose in lib/, inside a war, inside a zip with the EICAR jar."""
    jars = [(f"lib{i:03d}", _jar(rng, "com.example.bench", f"lib{i:03d}", f"1.{i}.0"))
            for i in range(count)]
    half = len(jars) // 2
    for artifact, data in jars[:half]:
        yield f"lib/{artifact}-1.0.jar", data
    yield "webapps/store.war", _zip([
        *((f"WEB-INF/lib/{a}.jar", d) for a, d in jars[half:]),
        ("WEB-INF/web.xml", b"<web-app/>\n"),
    ])
    probe = _jar(rng, "com.example.bench", "probe", "0.9.1", extra=[("samples/eicar.com", EICAR)])
    yield "lib/tools-bundle.zip", _zip([
        ("tools/probe.jar", probe),
        ("tools/jackson-databind.jar",
         _jar(rng, "com.fasterxml.jackson.core", "jackson-databind", "2.9.10.1")),
        ("tools/README.txt", b"Bundled tools.\n"),
    ])


def _jar(rng: random.Random, group: str, artifact: str, version: str, extra=()) -> bytes:
    classes = [(f"{group.replace('.', '/')}/{artifact}/C{i}.class", _text(rng, 6000))
               for i in range(rng.randint(20, 60))]
    return _zip([
        ("META-INF/MANIFEST.MF", f"Manifest-Version: 1.0\nImplementation-Version: {version}\n".encode()),
        (f"META-INF/maven/{group}/{artifact}/pom.properties",
         f"groupId={group}\nartifactId={artifact}\nversion={version}\n".encode()),
        *classes,
        *extra,
    ])


def _zip(entries) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in entries:
            info = zipfile.ZipInfo(name, (2024, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, data)
    return buffer.getvalue()


def _text_files(rng: random.Random, budget: int):
    n = 0
    while budget > 0:
        size = min(budget, int(rng.paretovariate(1.4) * 5000))
        size = min(size, 400_000)
        budget -= size
        ext = rng.choice(("py", "js", "java", "go", "c", "h", "md", "txt", "json", "yaml"))
        yield f"src/m{n // 500:04d}/{n % 500:03d}_{rng.choice(_WORDS)}.{ext}", _text(rng, size)
        n += 1


_LINES: list[bytes] = []


def _text(rng: random.Random, size: int) -> bytes:
    """Source-like text: lines drawn from a pool of a few thousand random lines."""
    if not _LINES:
        pool = random.Random(7)
        for _ in range(4000):
            words = pool.choices(_WORDS, k=pool.randint(2, 12))
            indent = "    " * pool.randint(0, 3)
            _LINES.append(f"{indent}{' '.join(words)}  # {pool.getrandbits(32):08x}\n".encode())
    out = bytearray()
    while len(out) < size:
        out += b"".join(rng.choices(_LINES, k=64))
    return bytes(out[:size])


def _blobs(rng: random.Random, budget: int):
    n = 0
    while budget >= 25 * MB:  # a remainder under 25 MB is left out rather than padded to 50
        size = min(rng.randint(50, 200) * MB, max(budget, 50 * MB))
        budget -= size
        yield f"assets/blob{n:02d}.bin", (size, _random_chunks(rng.getrandbits(64), size))
        n += 1


def _random_chunks(seed: int, size: int):
    rng = random.Random(seed)
    while size > 0:
        n = min(size, 4 * MB)
        yield rng.randbytes(n)
        size -= n


def remove_tree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
    if os.path.exists(path):
        raise RuntimeError(f"could not remove {path}")
