"""Python sources beyond installed metadata: requirements files, the lock files of
pip-tools/uv, Poetry, Pipenv, PDM and uv, conda environments; and the installed-metadata
corner cases (upper-case suffixes, the interpreter's own egg-info).

The lock files under tests/data/lockfiles/python/ were written by the tools themselves
(see the README there).
"""

from __future__ import annotations

import shutil
import tarfile
from pathlib import Path

import pytest

from .test_catalog import found, purls, scan

LOCKFILES = Path(__file__).parents[1] / "data" / "lockfiles" / "python"

RUNTIME = {
    ("certifi", "2026.10.19.post1"),
    ("chardet", "3.0.4"),
    ("idna", "2.7"),
    ("urllib3", "1.23"),
    ("requests", "2.19.1"),
    ("pyyaml", "5.3"),
    ("jinja2", "2.10"),
    ("markupsafe", "3.0.4"),
}
DEV = {("pytest", "7.4.0"), ("iniconfig", "2.3.1"), ("packaging", "26.4"), ("pluggy", "1.7.0")}
SOCKS = ("pysocks", "1.7.1")


def scoped(components, leaf: str) -> set[tuple[str, str, str]]:
    return {
        (c.name, c.version, c.scope) for c in components if c.location.endswith("/" + leaf)
    }


def files_of(*tools: str) -> dict[str, bytes]:
    files = {}
    for tool in tools:
        for path in (LOCKFILES / tool).iterdir():
            files[f"app/{tool}/{path.name}"] = path.read_bytes()
    return files


def test_tool_written_lock_files_with_their_scopes(tmp_path):
    components = scan(tmp_path, files_of("pip", "poetry", "pipenv", "pdm", "uv"))
    runtime = {(n, v, "runtime") for n, v in RUNTIME}
    dev = {(n, v, "dev") for n, v in DEV}
    colorama = ("colorama", "0.4.6", "dev")  # pytest's, on Windows only
    socks = (*SOCKS, "optional")
    assert scoped(components, "poetry.lock") == runtime | dev | {colorama, socks}
    assert scoped(components, "uv.lock") == runtime | dev | {colorama, socks}
    assert scoped(components, "pdm.lock") == runtime | dev | {colorama, socks}
    # pipenv locks for the platform it runs on and has no extras here
    assert scoped(components, "Pipfile.lock") == runtime | dev
    # requirements files do not say what the packages are for
    assert scoped(components, "requirements.txt") == {
        (n, v, "unknown") for n, v in RUNTIME | {SOCKS}
    }
    # the projects themselves (uv's "shop-agent" root) are not components
    assert not {c for c in components if c.name == "shop-agent"}
    assert {c.ecosystem for c in components} == {"PyPI"}
    assert "pkg:pypi/pyyaml@5.3" in purls(components)


def test_pdm_groups_without_a_pyproject_are_unknown(tmp_path):
    lock = (LOCKFILES / "pdm" / "pdm.lock").read_bytes()
    components = scan(tmp_path, {"pdm.lock": lock})
    assert {c.scope for c in components if (c.name, c.version) in DEV} == {"unknown"}
    assert {c.scope for c in components if (c.name, c.version) in RUNTIME} == {"runtime"}


def test_poetry_1_categories(tmp_path):
    lock = """
[[package]]
name = "Django"
version = "2.2.8"
category = "main"
optional = false

[[package]]
name = "black"
version = "19.10b0"
category = "dev"
optional = false

[[package]]
name = "psycopg2"
version = "2.8.4"
category = "main"
optional = true

[metadata]
lock-version = "1.1"
"""
    assert scoped(scan(tmp_path, {"poetry.lock": lock}), "poetry.lock") == {
        ("Django", "2.2.8", "runtime"),
        ("black", "19.10b0", "dev"),
        ("psycopg2", "2.8.4", "optional"),
    }


REQUIREMENTS = """\
# production pins, as pip-compile and hand-written files have them
Django==2.2.8 \\
    --hash=sha256:a4ad4f6f9c6a4b7af7e2deec8d0cbff28501852e5010d6c2dc695d3d1fae7ca0 \\
    --hash=sha256:fa98ec9cc9bf5d72a08ebf3654a9452e761fbb8566e3f80de199cbc15477e891
requests[security,socks]==2.19.1 ; python_version >= "3.6"   # extras and a marker
PyYAML===5.3
six==1.16.0#no space before this comment
  urllib3 == 1.24.1
celery>=4.0          # a range: not a pin
flask                # no version: not a pin, but a constraint may fix it
numpy==1.*           # a wildcard: not a pin
mypkg @ https://example.com/mypkg-1.0.tar.gz
-e git+https://github.com/example/thing.git#egg=thing
--index-url https://pypi.org/simple
-r requirements/base.txt
-c constraints.txt
-r ../../../../etc/outside.txt
--requirement=/etc/absolute.txt
"""


def test_requirements_pins_includes_and_constraints(tmp_path):
    components = scan(
        tmp_path,
        {
            "app/requirements.txt": REQUIREMENTS,
            # included files: named by the including file, found relative to it
            "app/requirements/base.txt": "Jinja2==2.10\n-r ../requirements.txt\n-rmore.txt\n",
            "app/requirements/more.txt": "idna==2.7\n",
            "app/constraints.txt": "flask==0.12.2\ncelery==4.4.0\nlxml==4.2.0\n",
            # the same name in another directory is not what the include names
            "other/constraints.txt": "flask==9.9.9\n",
            "app/requirements-dev.txt": "pytest==7.4.0\n",
            "app/requirements/test.txt": "coverage==4.5\n",
            "app/notes.txt": "pinned==1.0\n",  # not a requirements file
        },
    )
    assert found(components) == {
        ("PyPI", "Django", "2.2.8", "app/requirements.txt"),
        ("PyPI", "requests", "2.19.1", "app/requirements.txt"),
        ("PyPI", "PyYAML", "5.3", "app/requirements.txt"),
        ("PyPI", "six", "1.16.0", "app/requirements.txt"),
        ("PyPI", "urllib3", "1.24.1", "app/requirements.txt"),
        ("PyPI", "Jinja2", "2.10", "app/requirements/base.txt"),
        ("PyPI", "idna", "2.7", "app/requirements/more.txt"),
        # the constraints fix the versions of flask and celery, which the file requires
        # without a pin; lxml is not required: not a component
        ("PyPI", "flask", "0.12.2", "app/constraints.txt"),
        ("PyPI", "celery", "4.4.0", "app/constraints.txt"),
        ("PyPI", "pytest", "7.4.0", "app/requirements-dev.txt"),
        ("PyPI", "coverage", "4.5", "app/requirements/test.txt"),
    }
    assert {c.scope for c in components} == {"unknown"}
    assert "pkg:pypi/pyyaml@5.3" in purls(components)


def test_requirements_in_utf16_and_with_crlf(tmp_path):
    body = "Flask==1.0.2\r\nrequests==2.19.1 \\\r\n    --hash=sha256:00\r\n"
    components = scan(tmp_path, {"requirements.txt": body.encode("utf-16")})
    assert {(c.name, c.version) for c in components} == {
        ("Flask", "1.0.2"), ("requests", "2.19.1")
    }


def test_requirements_include_depth_is_bounded(tmp_path):
    # .in files are followed as includes but are not requirements files of their own
    chain = {
        f"app/requirements/chain{i}.in": f"pkg{i}==1.0\n-r chain{i + 1}.in\n" for i in range(20)
    }
    components = scan(tmp_path, {"app/requirements.txt": "-r requirements/chain1.in\n", **chain})
    assert {c.name for c in components} == {f"pkg{i}" for i in range(1, 9)}


def test_upper_case_metadata_suffix_and_the_interpreter_egg_info(tmp_path):
    metadata = "Metadata-Version: 2.1\nName: {}\nVersion: {}\n\n"
    components = scan(
        tmp_path,
        {
            "site-packages/Foo-1.0.DIST-INFO/METADATA": metadata.format("Foo", "1.0"),
            "site-packages/Bar-2.0-py3.8.EGG-INFO/PKG-INFO": metadata.format("Bar", "2.0"),
            "site-packages/baz-3.0.Egg-Info": metadata.format("baz", "3.0"),
            "usr/lib/python2.7/lib-dynload/Python-2.7.egg-info": metadata.format(
                "Python", "2.7.18"
            ),
        },
    )
    assert {(c.name, c.version) for c in components} == {
        ("Foo", "1.0"), ("Bar", "2.0"), ("baz", "3.0")
    }


CONDA_RECORD = """{
  "build": "py39h27cfd23_1",
  "build_number": 1,
  "channel": "https://repo.anaconda.com/pkgs/main/linux-64",
  "depends": ["libgcc-ng >=7.3.0", "python >=3.9,<3.10.0a0"],
  "files": ["lib/python3.9/site-packages/yaml/__init__.py"],
  "fn": "pyyaml-5.3.1-py39h27cfd23_1.conda",
  "license": "MIT",
  "name": "pyyaml",
  "subdir": "linux-64",
  "version": "5.3.1"
}"""


def test_conda_environment_records(tmp_path):
    components = scan(
        tmp_path,
        {
            "opt/conda/conda-meta/pyyaml-5.3.1-py39h27cfd23_1.json": CONDA_RECORD,
            "opt/conda/conda-meta/history": "==> 2022-06-01 <==\n",
            "opt/conda/conda-meta/broken-1.0-0.json": "{not json",
            "opt/conda/conda-meta/noversion-1.0-0.json": '{"name": "noversion"}',
        },
    )
    assert found(components) == {
        ("conda", "pyyaml", "5.3.1", "opt/conda/conda-meta/pyyaml-5.3.1-py39h27cfd23_1.json")
    }
    assert purls(components) == {
        "pkg:conda/pyyaml@5.3.1?build=py39h27cfd23_1&channel=main&subdir=linux-64"
    }


@pytest.mark.parametrize(
    "name, body",
    [
        ("poetry.lock", "[[package]\nname = 'x'"),
        ("uv.lock", "version = 1\n[[package]]\nname = 'x'\nversion = "),
        ("pdm.lock", "\x00\x01"),
        ("Pipfile.lock", '{"default": {"x": {"version": ["==1.0"]}}, "develop": 3}'),
        ("Pipfile.lock", "{"),
        ("requirements.txt", b"\xff\xfe\x00\xd8"),  # a lone surrogate in UTF-16
        ("requirements.txt", "-r requirements.txt\n-r ./requirements.txt\n"),  # a cycle
    ],
)
def test_malformed_python_locks_are_skipped(tmp_path, name, body):
    components = scan(tmp_path, {f"app/{name}": body, "app/ok/requirements.txt": "six==1.16.0\n"})
    assert found(components) == {("PyPI", "six", "1.16.0", "app/ok/requirements.txt")}


# -- through the whole scan --------------------------------------------------------------

PYYAML_5_3 = {"CVE-2020-1747", "CVE-2020-14343"}


@pytest.mark.parametrize("packer", ["tar.gz", "zip"])
def test_python_locks_through_the_scan(tmp_path, scan_package_at, packer):
    source = tmp_path / "source" / "agent-1.0"
    shutil.copytree(LOCKFILES, source / "locks")
    base = f"agent_1_0.{packer}!/agent-1.0"
    package = tmp_path / f"agent_1_0.{packer}"
    if packer == "zip":
        import zipfile

        with zipfile.ZipFile(package, "w", zipfile.ZIP_DEFLATED) as zf:
            for path in sorted(source.rglob("*")):
                if path.is_file():
                    zf.write(path, f"agent-1.0/{path.relative_to(source)}")
    else:
        with tarfile.open(package, "w:gz") as tar:
            tar.add(source, "agent-1.0")
    result = scan_package_at(package)

    pyyaml = {(c.location, c.scope) for c in result.components if c.name == "pyyaml"}
    assert pyyaml == {
        (f"{base}/locks/{tool}/{leaf}", scope)
        for tool, leaf, scope in [
            ("pip", "requirements.txt", "unknown"),
            ("poetry", "poetry.lock", "runtime"),
            ("pipenv", "Pipfile.lock", "runtime"),
            ("pdm", "pdm.lock", "runtime"),
            ("uv", "uv.lock", "runtime"),
        ]
    }
    vulnerable = [f for f in result.findings if f.component and f.component.name == "pyyaml"]
    assert vulnerable
    assert PYYAML_5_3 <= {a for f in vulnerable for a in (*f.ids, *f.aliases)}
    assert result.verdict == "rejected"
    assert ("pytest", "7.4.0", "dev") in {
        (c.name, c.version, c.scope) for c in result.components
    }
