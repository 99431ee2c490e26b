"""JavaScript lock files: npm (v1 aliases, scopes), Yarn v1 and berry, pnpm v5 to v9, Bun.

The lock files under tests/data/lockfiles/npm/ were written by the tools themselves
from one package.json (see the README there).
"""

from __future__ import annotations

import json
import shutil
import tarfile
import zipfile
from pathlib import Path

import pytest

from .test_catalog import found, purls, scan

LOCKFILES = Path(__file__).parents[1] / "data" / "lockfiles" / "npm"

RUNTIME = {
    ("@babel/helper-validator-identifier", "7.22.20"),
    ("axios", "0.21.0"),
    ("case", "1.6.3"),  # the alias "case-alias": "npm:case@1.6.3"
    ("follow-redirects", "1.16.3"),
    ("lodash", "4.17.15"),
}
DEV = ("minimist", "1.2.0")
OPTIONAL = ("nanoid", "3.1.20")
ALL = RUNTIME | {DEV, OPTIONAL}
LOCKS = {
    "npm1": "package-lock.json",
    "npm3": "package-lock.json",
    "yarn1": "yarn.lock",
    "berry": "yarn.lock",
    "pnpm7": "pnpm-lock.yaml",  # lockfileVersion 5.4
    "pnpm8": "pnpm-lock.yaml",  # 6.0
    "pnpm9": "pnpm-lock.yaml",  # 9.0
    "bun": "bun.lock",
}


def scoped(components, where: str) -> set[tuple[str, str, str]]:
    return {(c.name, c.version, c.scope) for c in components if c.location.endswith(where)}


@pytest.fixture(scope="module")
def tool_locks(tmp_path_factory):
    files = {}
    for tool, lock in LOCKS.items():
        files[f"web/{tool}/{lock}"] = (LOCKFILES / tool / lock).read_bytes()
        files[f"web/{tool}/package.json"] = (LOCKFILES / tool / "package.json").read_bytes()
    return scan(tmp_path_factory.mktemp("locks"), files)


@pytest.mark.parametrize(
    "tool", ["npm1", "npm3", "pnpm7", "pnpm8", "pnpm9", "bun", "yarn1", "berry"]
)
def test_locks_stating_scopes(tool_locks, tool):
    expected = (
        {(n, v, "runtime") for n, v in RUNTIME} | {(*DEV, "dev"), (*OPTIONAL, "optional")}
    )
    assert scoped(tool_locks, f"web/{tool}/{LOCKS[tool]}") == expected


@pytest.mark.parametrize("tool", ["yarn1", "berry"])
def test_yarn_locks_without_their_package_json(tmp_path, tool):
    # yarn.lock does not say which packages are dev or optional: the package.json does
    lock = (LOCKFILES / tool / "yarn.lock").read_bytes()
    components = scan(tmp_path, {"web/yarn.lock": lock, "web/sub/package.json": "{}"})
    assert scoped(components, "web/yarn.lock") == {(n, v, "unknown") for n, v in ALL}


def test_js_lock_components_are_npm_packages(tool_locks):
    assert {c.ecosystem for c in tool_locks} == {"npm"}
    assert "pkg:npm/%40babel/helper-validator-identifier@7.22.20" in purls(tool_locks)
    # the project itself and the alias's own name are not components
    assert not {c for c in tool_locks if c.name in ("shop-widget", "case-alias")}


def test_yarn_lock_beside_a_malformed_package_json(tmp_path):
    lock = (LOCKFILES / "yarn1" / "yarn.lock").read_bytes()
    components = scan(tmp_path, {"web/yarn.lock": lock, "web/package.json": "{\"dependencies\": ["})
    assert scoped(components, "web/yarn.lock") == {(n, v, "unknown") for n, v in ALL}


def test_npm_v1_aliases_and_nested_names(tmp_path):
    lock = {
        "lockfileVersion": 1,
        "dependencies": {
            "babel-code-frame": {"version": "npm:@babel/code-frame@7.0.0"},
            "string-width-cjs": {"version": "npm:string-width@4.2.0", "dev": True},
            "other": {"version": "file:deps/other"},
            "node_modules/async": {"version": "2.6.1"},
            "express": {
                "version": "4.16.0",
                "dependencies": {"debug": {"version": "2.6.9", "optional": True}},
            },
        },
    }
    components = scan(tmp_path, {"package-lock.json": json.dumps(lock)})
    assert scoped(components, "package-lock.json") == {
        ("@babel/code-frame", "7.0.0", "runtime"),
        ("string-width", "4.2.0", "dev"),
        ("express", "4.16.0", "runtime"),
        ("debug", "2.6.9", "optional"),
    }


def test_npm_v2_scopes_and_the_installed_tree(tmp_path):
    lock = {
        "lockfileVersion": 3,
        "packages": {
            "": {"name": "app", "version": "1.0.0"},
            "node_modules/a": {"version": "1.0.0"},
            "node_modules/b": {"version": "1.0.0", "dev": True},
            "node_modules/c": {"version": "1.0.0", "optional": True},
            "node_modules/d": {"version": "1.0.0", "devOptional": True},
            "node_modules/e-alias": {"name": "e", "version": "2.0.0"},
            "packages/lib": {"name": "lib", "version": "0.1.0"},
            "node_modules/lib": {"resolved": "packages/lib", "link": True},
        },
    }
    body = json.dumps(lock)
    components = scan(
        tmp_path, {"package-lock.json": body, "node_modules/.package-lock.json": body}
    )
    assert scoped(components, "/package-lock.json") == {
        ("a", "1.0.0", "runtime"),
        ("b", "1.0.0", "dev"),
        ("c", "1.0.0", "optional"),
        ("d", "1.0.0", "optional"),
        ("e", "2.0.0", "runtime"),
    }
    # node_modules/.package-lock.json describes what is installed: runtime
    assert {c.scope for c in components if ".package-lock.json" in c.location} == {"runtime"}


YARN_V1 = """\
# THIS IS AN AUTOGENERATED FILE. DO NOT EDIT THIS FILE DIRECTLY.
# yarn lockfile v1


"@types/node@*", "@types/node@^18":
  version "18.11.9"
  resolved "https://registry.yarnpkg.com/@types/node/-/node-18.11.9.tgz#02d013de7058cea16d36168ef2fc653464cfbad4"

js-tokens@^3.0.0, "js-tokens@^3.0.0 || ^4.0.0":
  version "4.0.0"
  dependencies:
    loose-envify "^1.0.0"

local-lib@file:./lib:
  version "1.0.0"

string-width-cjs@npm:string-width@4.2.3:
  version "4.2.3"

"ms@git+https://github.com/vercel/ms.git#0.7.1":
  version "0.7.1"
  resolved "git+https://github.com/vercel/ms.git#0.7.1"

asap@unsupported:~2.0.6:
  version "2.0.6"

"jquery@^3.6.0":
  "integrity" "sha512-JVzAR/AjBvVt2BmYhxRCSYysDsPcssdmTFnzyLEts9qNwmjmu4JTAMYubEfwVOSwpQ1I1sKKFcxhZCI2buerfw=="
  "resolved" "https://registry.npmjs.org/jquery/-/jquery-3.6.0.tgz"
  "version" "3.6.0"
"""


def test_yarn_v1_forms(tmp_path):
    components = scan(tmp_path, {"yarn.lock": YARN_V1})
    # a git, path or unknown-protocol reference is no registry release: left out
    assert {(c.name, c.version) for c in components} == {
        ("@types/node", "18.11.9"),
        ("js-tokens", "4.0.0"),
        ("string-width", "4.2.3"),
        ("jquery", "3.6.0"),  # keys quoted as npm writes them
    }


def test_pnpm_environment_document_is_not_the_project(tmp_path):
    lock = """\
---
lockfileVersion: '9.0'

importers:

  .:
    configDependencies: {}
    packageManagerDependencies:
      pnpm:
        specifier: ^11.7.0
        version: 11.9.0

packages:

  pnpm@11.9.0:
    resolution: {integrity: sha512-x}
    hasBin: true

snapshots:

  pnpm@11.9.0: {}

---
lockfileVersion: '9.0'

importers:

  .:
    dependencies:
      is-number:
        specifier: 7.0.0
        version: 7.0.0

packages:

  is-number@7.0.0:
    resolution: {integrity: sha512-y}
    engines: {node: '>=0.12.0'}

snapshots:

  is-number@7.0.0: {}
"""
    assert scoped(scan(tmp_path, {"pnpm-lock.yaml": lock}), "pnpm-lock.yaml") == {
        ("is-number", "7.0.0", "runtime")
    }


def test_pnpm_v5_keys_with_peers_and_registries(tmp_path):
    lock = """\
lockfileVersion: 5.3

specifiers:
  react-dom: ^17.0.0

dependencies:
  react-dom: 17.0.2_react@17.0.2

packages:

  /react-dom/17.0.2_react@17.0.2:
    resolution: {integrity: sha512-s4h96KtLDUQlsENhMn1ar8t2bEa+q/YAtj8pPPdIjPDGBDIVNsrD9aXNWqspUe6AzKCIG0C1HZZLqLV7qpOBGA==}
    peerDependencies:
      react: 17.0.2
    dependencies:
      loose-envify: 1.4.0
    dev: false

  /@babel/core/7.20.2:
    resolution: {integrity: sha512-w7DbG8DtMrJcFOi4VrLm+8QM4az8Mo+PuLBKLp2zrYRCow8W/f9xiXm5sN53C8HksCyDQwCKha9JiDoIyPjT2g==}
    dev: true

  registry.example.com/private-pkg/1.2.3:
    resolution: {tarball: https://registry.example.com/private-pkg/-/private-pkg-1.2.3.tgz}
    name: private-pkg
    version: 1.2.3
    dev: false

  registry.npmjs.org/@foo/bar/1.1.0:
    dev: false

  example.com/foo/1.3.0_bar@2.0.0:
    dev: false

  github.com/kevva/is-positive:
    dev: false

  file:..:
    resolution: {directory: .., type: directory}
    name: file:..
    version: 1.0.0
    dev: false
"""
    assert scoped(scan(tmp_path, {"pnpm-lock.yaml": lock}), "pnpm-lock.yaml") == {
        ("react-dom", "17.0.2", "runtime"),
        ("@babel/core", "7.20.2", "dev"),
        ("private-pkg", "1.2.3", "runtime"),
        ("@foo/bar", "1.1.0", "runtime"),
        ("foo", "1.3.0", "runtime"),
    }


def test_bun_lock_with_comments_nested_and_workspace_packages(tmp_path):
    lock = """{
  // bun.lock is JSONC
  "lockfileVersion": 1,
  "workspaces": {
    "": {"name": "app", "dependencies": {"a": "^1", "lib": "workspace:*"},},
    "packages/lib": {"name": "lib", "devDependencies": {"b": "^2"}},
  },
  "packages": {
    "a": ["a@1.0.0", "", {"dependencies": {"b": "^1"}}, "sha512-x"],
    "a/b": ["b@1.5.0", "", {}, "sha512-y"],
    "b": ["b@2.0.0", "", {}, "sha512-z"],
    "lib": ["lib@workspace:packages/lib"],
    "gh": ["gh@github:user/gh#abc", {}, "user-gh-abc"],
  },
}"""
    assert scoped(scan(tmp_path, {"bun.lock": lock}), "bun.lock") == {
        ("a", "1.0.0", "runtime"),
        ("b", "1.5.0", "runtime"),  # a's own copy
        ("b", "2.0.0", "dev"),
    }


def test_pnpm_v9_tarballs_and_packed_files_with_their_versions(tmp_path):
    lock = """\
lockfileVersion: '9.0'

importers:

  .:
    dependencies:
      asynckit:
        specifier: https://github.com/alexindigo/asynckit/tarball/v0.4.0
        version: https://github.com/alexindigo/asynckit/tarball/v0.4.0
      lodash:
        specifier: file:vendor/lodash.tgz
        version: file:vendor/lodash.tgz
      lib:
        specifier: link:../lib
        version: link:../lib

packages:

  asynckit@https://github.com/alexindigo/asynckit/tarball/v0.4.0:
    resolution: {tarball: https://github.com/alexindigo/asynckit/tarball/v0.4.0}
    version: 0.4.0

  lodash@file:vendor/lodash.tgz:
    resolution: {integrity: sha512-x, tarball: file:vendor/lodash.tgz}
    version: 4.17.21

  nameless@https://example.com/nameless.tgz:
    resolution: {tarball: https://example.com/nameless.tgz}

snapshots:

  asynckit@https://github.com/alexindigo/asynckit/tarball/v0.4.0: {}

  lodash@file:vendor/lodash.tgz: {}
"""
    assert scoped(scan(tmp_path, {"pnpm-lock.yaml": lock}), "pnpm-lock.yaml") == {
        ("asynckit", "0.4.0", "runtime"),
        ("lodash", "4.17.21", "runtime"),
    }


@pytest.mark.parametrize(
    "name, body",
    [
        ("yarn.lock", "\x00\xff garbage:\n  version"),
        ("yarn.lock", "__metadata:\n  version: 6\n\"x@npm:1\":\n  - [\n"),
        ("pnpm-lock.yaml", "lockfileVersion: '9.0'\npackages: [\n"),
        ("pnpm-lock.yaml", "lockfileVersion: {x\nimporters:\n  .: 3\n"),
        ("bun.lock", '{"packages": {"a": ["a@1.0.0"'),
        ("bun.lock", '{"packages": {"a": 7, "b": [3]}, "workspaces": []}'),
        ("package-lock.json", '{"dependencies": {"a": {"version": ["1"]}}}'),
    ],
)
def test_malformed_js_locks_are_skipped(tmp_path, name, body):
    ok = (LOCKFILES / "pnpm9" / "pnpm-lock.yaml").read_bytes()
    components = scan(tmp_path, {f"web/{name}": body, "ok/pnpm-lock.yaml": ok})
    assert {c.location.split("!/", 1)[1] for c in components} == {"ok/pnpm-lock.yaml"}
    assert found(components) >= {("npm", "lodash", "4.17.15", "ok/pnpm-lock.yaml")}


# -- through the whole scan --------------------------------------------------------------



@pytest.mark.parametrize("packer", ["tar.gz", "zip"])
def test_js_locks_through_the_scan(tmp_path, scan_package_at, packer):
    source = tmp_path / "source" / "widget-1.0"
    shutil.copytree(LOCKFILES, source / "locks")
    package = tmp_path / f"widget_1_0.{packer}"
    if packer == "zip":
        with zipfile.ZipFile(package, "w", zipfile.ZIP_DEFLATED) as zf:
            for path in sorted(source.rglob("*")):
                if path.is_file():
                    zf.write(path, f"widget-1.0/{path.relative_to(source)}")
    else:
        with tarfile.open(package, "w:gz") as tar:
            tar.add(source, "widget-1.0")
    result = scan_package_at(package)

    base = f"widget_1_0.{packer}!/widget-1.0/locks"
    lodash = {c.location for c in result.components if c.name == "lodash"}
    assert lodash == {f"{base}/{tool}/{lock}" for tool, lock in LOCKS.items()}
    advisories = {
        (f.component.name, i) for f in result.findings if f.component for i in f.ids
    }
    # lodash 4.17.15 and axios 0.21.0 have advisories in the corpus
    assert ("lodash", "GHSA-p6mc-m468-83gw") in advisories
    assert ("axios", "GHSA-4w2v-q235-vp99") in advisories
    assert result.verdict == "rejected"
    minimist = {(c.location.rsplit("/", 2)[1], c.scope) for c in result.components
                if c.name == "minimist"}
    assert ("pnpm9", "dev") in minimist and ("yarn1", "dev") in minimist
