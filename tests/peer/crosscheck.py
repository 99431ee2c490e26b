"""Cross-check the catalogers against a peer's own test fixtures (not collected by pytest).

Usage::

    python tests/peer/crosscheck.py PEER_CHECKOUT

``PEER_CHECKOUT`` is a work tree of aquasecurity/trivy (the fixtures alone do:
``git archive HEAD pkg/dependency/parser | tar -x -C DIR``). For every format in
:data:`FORMATS`, the peer's fixture files are laid out as a seller would ship
them (each under its own directory, with the file name the format is known by)
in one ``.tar.gz`` package, the package goes through :func:`scanner.pipeline.scan_package`
with a real clamd, and the components found at each fixture are compared with
the name/version pairs the peer's tests expect for it (read from the peer's
``*_test.go`` files and the Go files beside them that hold expected values).

A ``dev`` or ``optional`` component the peer does not list is not counted beyond
the peer's (some of its parsers leave development and provided dependencies out):
it is shown apart. Prints
found/expected per ecosystem, and every pair missed or found beyond the peer's.
Exit status 1 when a pair is missed.
"""

from __future__ import annotations

import argparse
import re
import sys
import tarfile
import tempfile
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
OSV = ROOT / "tests" / "data" / "corpus" / "osv"

from ops.clamd import start_clamd  # noqa: E402
from scanner.model import NEST, Settings  # noqa: E402
from scanner.pipeline import scan_package  # noqa: E402


@dataclass(frozen=True)
class Format:
    """One format: where the peer keeps its fixtures and expectations."""

    ecosystem: str
    #: The peer's parser directory (its testdata/ and *_test.go files are read).
    directory: str
    #: The name a seller's file of this format has; "" keeps the fixture's own name.
    ship_as: str = ""
    #: Fixtures (names under testdata/) left out, with the reason.
    skip: dict[str, str] = field(default_factory=dict)
    #: Maven projects: each case is a directory holding a pom.xml, the peer's local
    #: repository beside them (shipped in the package too).
    pom: bool = False
    #: Archives: the expectations are Go variables of packages that name their
    #: ``FilePath``; these variables are left out (what the peer asks a server for).
    archive_skip_vars: tuple[str, ...] | None = None
    #: Where a fixture goes inside its directory, from its name, when the format is
    #: known by a path (``conda-meta/x.json``, ``specifications/x.gemspec``).
    ship: Callable[[str], str] | None = None
    #: The peer lists the project itself and its workspace members (its root and
    #: workspace relationships, or the names given here per fixture): the project's
    #: own code is not a component, so those pairs are left out.
    own: dict[str, tuple[str, ...]] | None = None


TRIVY = "pkg/dependency/parser"
FORMATS: tuple[Format, ...] = (
    Format("Maven", f"{TRIVY}/gradle/lockfile", "gradle.lockfile"),
    Format("NuGet", f"{TRIVY}/nuget/lock", "packages.lock.json"),
    Format("NuGet", f"{TRIVY}/nuget/config", "packages.config"),
    Format("NuGet", f"{TRIVY}/nuget/packagesprops", "Directory.Packages.props"),
    Format("SwiftURL", f"{TRIVY}/swift/swift", "Package.resolved"),
    Format("CocoaPods", f"{TRIVY}/swift/cocoapods", "Podfile.lock"),
    Format("ConanCenter", f"{TRIVY}/c/conan", "conan.lock"),
    # wantSHA1 and wantHeuristic come from Maven Central's search (by SHA-1, by
    # artifact id); wantOffline is the peer's offline guess from a manifest title.
    Format("Maven", f"{TRIVY}/java/jar",
           archive_skip_vars=("wantSHA1", "wantHeuristic", "wantOffline")),
    Format("Maven", f"{TRIVY}/java/pom", "pom.xml", pom=True),
    Format("PyPI", f"{TRIVY}/python/pip", "requirements.txt", own={}, skip={
        # only with the peer's option to take a "~=" range's lower bound as the version
        "requirements_compatible.txt": "useMinVersion",
    }),
    Format("PyPI", f"{TRIVY}/python/poetry", "poetry.lock", own={}),
    Format("PyPI", f"{TRIVY}/python/pipenv", "Pipfile.lock", own={}),
    Format("PyPI", f"{TRIVY}/python/uv", "uv.lock", own={}),
    Format("PyPI", f"{TRIVY}/python/packaging", own={}, ship=lambda name: (
        f"site-packages/{name.removesuffix('.METADATA')}.dist-info/METADATA"
        if name.endswith(".METADATA") else
        f"site-packages/{name.removesuffix('.PKG-INFO').replace('-egg-info', '.egg-info')}"
        "/PKG-INFO" if name.endswith(".PKG-INFO") else f"site-packages/{name}")),
    Format("conda", f"{TRIVY}/conda/meta", own={}, ship=lambda name: f"conda-meta/{name}"),
    Format("npm", f"{TRIVY}/nodejs/npm", "package-lock.json", own={
        # the lock's own workspace packages (linked from node_modules)
        "package-lock_v3_with_workspace.json": ("function1", "nested_func"),
        "package-lock_v3_with_workspace_as_object.json": ("testapp",),
        "package-lock_v3_without_root_deps_field.json": ("func1",),
    }),
    Format("npm", f"{TRIVY}/nodejs/yarn", "yarn.lock", own={}),
    Format("npm", f"{TRIVY}/nodejs/pnpm", "pnpm-lock.yaml", own={}),
    Format("npm", f"{TRIVY}/nodejs/bun", "bun.lock", own={}),
    Format("RubyGems", f"{TRIVY}/ruby/bundler", "Gemfile.lock", own={}),
    Format("RubyGems", f"{TRIVY}/ruby/gemspec", own={},
           ship=lambda name: f"specifications/{name}"),
)

_POM_CASE = re.compile(r'inputFile:\s*filepath\.Join\(((?:\s*"[^"]*",?)+)\s*\)')


def pom_cases(directory: Path) -> dict[str, set[tuple[str, str]]]:
    """Case directory (under testdata/) -> the pairs of the local-repository cases.

    The project itself and its modules (``RelationshipRoot``, ``RelationshipWorkspace``)
    are left out: a project's own coordinates are not a component, as an
    application's own package.json is not.
    """
    text = (directory / "parse_test.go").read_text(errors="replace")
    # Expected packages written as calls of helper functions: exampleApi("hash").
    helpers: dict[str, tuple[str, str]] = {}
    helper = re.compile(r"(?:^func (\w+)|\b(\w+)\s*:?=\s*func)\([^)]*\) ftypes\.Package \{", re.M)
    for func in helper.finditer(text):
        body = _block(text, func.end())
        pair = _PAIR.search(body)
        if pair and "RelationshipRoot" not in body and "RelationshipWorkspace" not in body:
            helpers[func.group(1) or func.group(2)] = (pair.group(1), pair.group(2))
    mentions = list(_POM_CASE.finditer(text))
    cases: dict[str, set[tuple[str, str]]] = {}
    for i, mention in enumerate(mentions):
        end = mentions[i + 1].start() if i + 1 < len(mentions) else len(text)
        region = text[mention.end():end]
        if not re.search(r"local:\s*true", region) or re.search(r'wantErr:\s*"', region):
            continue
        parts = re.findall(r'"([^"]*)"', mention.group(1))
        if parts[:1] != ["testdata"] or parts[-1] != "pom.xml":
            continue
        pairs = cases.setdefault("/".join(parts[1:-1]), set())
        want = region.split("wantDeps", 1)[0]
        names = list(re.finditer(r'\bName:\s*"([^"]*)"', want))
        for j, name in enumerate(names):
            entry = want[name.start(): names[j + 1].start() if j + 1 < len(names) else len(want)]
            version = re.search(r'\bVersion:\s*"([^"]*)"', entry)
            if version and "RelationshipRoot" not in entry and "RelationshipWorkspace" not in entry:
                pairs.add((name.group(1), version.group(1)))
        pairs.update(helpers[call] for call in re.findall(r"\b(\w+)\(", want) if call in helpers)
    return cases

_CASE = re.compile(r'"(testdata/[^"]+)"')
_OWN = re.compile(r"\bRelationship:\s*ftypes\.Relationship(?:Root|Workspace)\b")
_ALIAS = re.compile(r"^\s*(\w+)\s*=\s*(\w+)\s*$", re.M)


def _without_own(text: str) -> str:
    """``text`` without the package literals the peer marks as the project's own."""
    marks = {m.start() for m in _OWN.finditer(text)}
    if not marks:
        return text
    spans, stack, own = [], [], set()
    for i, ch in enumerate(text):
        if ch == "{":
            stack.append(i)
        elif ch == "}" and stack:
            start = stack.pop()
            if start in own:
                spans.append((start, i + 1))
        elif i in marks and stack:
            own.add(stack[-1])
    for start, end in sorted(spans, reverse=True):
        text = text[:start] + "{}" + text[end:]
    return text


def _go(path: Path, fmt: Format) -> str:
    """A Go file's text without comment lines (and without the project's own packages)."""
    text = "\n".join(
        line for line in path.read_text(errors="replace").splitlines()
        if not line.lstrip().startswith("//")
    )
    return _without_own(text) if fmt.own is not None else text
_PAIR = re.compile(r'\bName:\s*"([^"]*)"[^{}]*?\bVersion:\s*"([^"]*)"', re.S)
_VAR = re.compile(r"\b(\w+)\s*=\s*\[\]ftypes\.Package\{")
_WANT_VAR = re.compile(r"\bwant\w*:\s*(\w+)\s*,")


def _block(text: str, start: int) -> str:
    """The braces-balanced text that opens at ``text[start - 1] == "{"``."""
    depth = 1
    for i in range(start, len(text)):
        if text[i] == "{":
            depth += 1
        elif text[i] == "}":
            depth -= 1
            if depth == 0:
                return text[start:i]
    return text[start:]


_TRIPLE = re.compile(
    r'\bName:\s*"([^"]*)"(?:[^{}]|\{[^{}]*\})*?\bVersion:\s*"([^"]*)"'
    r'(?:[^{}]|\{[^{}]*\})*?\bFilePath:\s*"testdata/([^"/]+)',
    re.S,
)


def expected(checkout: Path, fmt: Format) -> dict[str, set[tuple[str, str]]]:
    """testdata file -> the (name, version) pairs the peer's tests expect of it."""
    directory = checkout / fmt.directory
    if fmt.pom:
        return pom_cases(directory)
    if fmt.archive_skip_vars is not None:
        cases: dict[str, set[tuple[str, str]]] = {}
        for go in directory.glob("*_test.go"):
            text = go.read_text(errors="replace")
            for var in _VAR.finditer(text):
                if var.group(1) in fmt.archive_skip_vars:
                    continue
                for name, version, fixture in _TRIPLE.findall(_block(text, var.end())):
                    cases.setdefault(fixture, set()).add((name, version))
        return {k: v for k, v in cases.items()
                if k not in fmt.skip and (directory / "testdata" / k).is_file()}
    variables: dict[str, set[tuple[str, str]]] = {}
    aliases: list[tuple[str, str]] = []
    for go in directory.glob("*.go"):
        text = _go(go, fmt)
        for var in _VAR.finditer(text):
            variables[var.group(1)] = set(_PAIR.findall(_block(text, var.end())))
        aliases += _ALIAS.findall(text)  # pnpmV6 = pnpmNormal
    for name, same in aliases:
        if same in variables:
            variables.setdefault(name, variables[same])
    cases: dict[str, set[tuple[str, str]]] = {}
    for go in directory.glob("*_test.go"):
        text = _go(go, fmt)
        mentions = list(_CASE.finditer(text))
        for i, mention in enumerate(mentions):
            end = mentions[i + 1].start() if i + 1 < len(mentions) else len(text)
            region = text[mention.end():end]
            if "wantErr" in region and re.search(r'wantErr:\s*"', region):
                continue  # the peer refuses the file: nothing to find
            pairs = set(_PAIR.findall(region))
            for name in _WANT_VAR.findall(region):
                pairs |= variables.get(name, set())
            fixture = mention.group(1).removeprefix("testdata/")
            own = set((fmt.own or {}).get(fixture, ()))
            if (directory / "testdata" / fixture).is_file():
                cases.setdefault(fixture, set()).update(p for p in pairs if p[0] not in own)
    return {k: v for k, v in cases.items() if k not in fmt.skip}


def modules(checkout_testdata: Path, where: str) -> set[str]:
    """The package paths of a case's pom.xml and of its modules' (recursively)."""
    prefix, _, case = where.partition("-pom/")
    found: set[str] = set()
    todo = [case]
    while todo and len(found) < 100:
        directory = todo.pop()
        pom = checkout_testdata / directory / "pom.xml"
        path = f"{prefix}-pom/{directory}/pom.xml"
        if path in found or not pom.is_file():
            continue
        found.add(path)
        text = pom.read_text(errors="replace")
        for module in re.findall(r"<module>([^<]+)</module>", text):
            todo.append(f"{directory}/{module.strip()}".rstrip("/"))
    return found


def build(checkout: Path, work: Path) -> tuple[Path, dict[str, tuple[Format, str, set]]]:
    """The seller package, and package-relative directory -> (format, fixture, expected)."""
    layout: dict[str, tuple[Format, str, set]] = {}
    package = work / "peer_fixtures.tar.gz"
    with tarfile.open(package, "w:gz") as tar:
        for n, fmt in enumerate(FORMATS):
            if fmt.pom:  # every case's directory and the local repository, as they are
                where = f"app/{n:02d}-{fmt.ecosystem}-pom"
                tar.add(checkout / fmt.directory / "testdata", where)
                for case, pairs in sorted(expected(checkout, fmt).items()):
                    layout[f"{where}/{case}"] = (fmt, case, pairs)
                continue
            for fixture, pairs in sorted(expected(checkout, fmt).items()):
                where = f"app/{n:02d}-{fmt.ecosystem}/{fixture.replace('/', '_')}"
                name = fmt.ship(Path(fixture).name) if fmt.ship else (
                    fmt.ship_as or Path(fixture).name)
                tar.add(checkout / fmt.directory / "testdata" / fixture, f"{where}/{name}")
                layout[where] = (fmt, fixture, pairs)
    return package, layout


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("checkout", type=Path, help="a work tree of the peer's repository")
    args = parser.parse_args()
    global work_poms
    work_poms = args.checkout / TRIVY / "java" / "pom" / "testdata"
    if not (args.checkout / TRIVY).is_dir():
        parser.error(f"{args.checkout} holds no {TRIVY}")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        package, layout = build(args.checkout, work)
        clamd = start_clamd(work / "clamd")
        try:
            settings = Settings(osv_paths=(OSV,), clamd=clamd.address, scratch_dir=work)
            result = scan_package(package, settings)
        finally:
            clamd.stop()
    found: dict[str, set[tuple[str, str]]] = defaultdict(set)
    dev: dict[str, set[tuple[str, str]]] = defaultdict(set)
    for c in result.components:
        inside = c.location.split(NEST, 1)[1]
        where = max((k for k in layout if inside.startswith(k + "/")), key=len, default="")
        if where and layout[where][0].pom and inside not in modules(work_poms, where):
            continue  # a parent's or a sibling's own pom, not the case's
        found[where].add((c.name, c.version))
        if c.scope in ("dev", "optional"):
            dev[where].add((c.name, c.version))
    totals: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    missed = False
    for where, (fmt, fixture, pairs) in sorted(layout.items()):
        got = found.get(where, set())
        hit = pairs & got
        beyond = got - pairs - dev.get(where, set())
        label = fmt.ship_as or (
            "" if fmt.archive_skip_vars is not None else fmt.directory.rsplit("/", 1)[-1])
        total = totals[f"{fmt.ecosystem} ({label})"]
        total[0] += len(hit)
        total[1] += len(pairs)
        total[2] += len(beyond)
        for pair in sorted(pairs - got):
            missed = True
            print(f"MISSED  {fmt.ecosystem:12} {fixture}: {pair[0]} {pair[1]}")
        for pair in sorted(beyond):
            print(f"EXTRA   {fmt.ecosystem:12} {fixture}: {pair[0]} {pair[1]}")
        for pair in sorted(dev.get(where, set()) - pairs):
            print(f"DEV/OPT {fmt.ecosystem:12} {fixture}: {pair[0]} {pair[1]}")
    print()
    print(f"{'format':45} found/expected  beyond the peer's")
    for name, (hit, want, extra) in sorted(totals.items()):
        name = name.replace(" ()", " (archives)")
        print(f"{name:45} {hit:5}/{want:<8} {extra}")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
