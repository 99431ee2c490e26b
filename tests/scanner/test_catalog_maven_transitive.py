"""pom.xml projects: transitive dependencies from the dependencies' own poms the package holds.

The expected graph is Maven's own (``tests/data/lockfiles/maven/transitive/maven-tree.txt``).
"""

from __future__ import annotations

import tarfile
from pathlib import Path

import pytest

from scanner.catalogers import java

from .test_catalog import scan

SAMPLE = Path(__file__).parents[1] / "data" / "lockfiles" / "maven" / "transitive"
OSV = Path(__file__).parents[1] / "data" / "corpus" / "osv"
#: Maven scopes as the scanner reports them
KIND = {"compile": "runtime", "runtime": "runtime", "test": "dev", "provided": "optional"}


def maven_resolved() -> dict[str, tuple[str, str]]:
    """groupId:artifactId -> (version, scope) from Maven's resolved tree."""
    resolved = {}
    for line in (SAMPLE / "maven-tree.txt").read_text().splitlines()[1:]:
        group, artifact, _type, version, scope = line.split()[0].split(":")
        resolved[f"{group}:{artifact}"] = (version, KIND[scope])
    return resolved


def repository() -> dict[str, bytes]:
    return {str(p.relative_to(SAMPLE / "repository")): p.read_bytes()
            for p in (SAMPLE / "repository").rglob("*.pom")}


def at(components, location: str) -> dict[str, tuple[str, str]]:
    return {c.name: (c.version, c.scope) for c in components
            if c.location.split("!/", 1)[1] == location}


def test_the_graph_maven_resolves_from_a_local_repository(tmp_path):
    files = {"app/pom.xml": (SAMPLE / "pom.xml").read_bytes()}
    files |= {f"app/.m2/repository/{path}": data for path, data in repository().items()}
    components = scan(tmp_path, files)
    assert at(components, "app/pom.xml") == maven_resolved()
    # the repository's poms are looked up, not reported as projects
    assert {c.location.split("!/", 1)[1] for c in components} == {"app/pom.xml"}


def test_poms_beside_jars_in_lib(tmp_path):
    files = {"app/pom.xml": (SAMPLE / "pom.xml").read_bytes()}
    files |= {f"app/lib/{Path(path).name}": data for path, data in repository().items()}
    assert at(scan(tmp_path, files), "app/pom.xml") == maven_resolved()


def test_without_the_dependencies_poms_only_the_direct_ones(tmp_path):
    components = scan(tmp_path, {"app/pom.xml": (SAMPLE / "pom.xml").read_bytes()})
    assert at(components, "app/pom.xml") == {
        "com.example.assay:lib-a": ("1.0", "runtime"),
        "com.example.assay:lib-t": ("1.0", "dev"),
        "com.example.assay:lib-p": ("1.0", "optional"),
        "com.example.assay:lib-r": ("1.0", "runtime"),
        "com.example.assay:lib-b": ("2.0", "runtime"),
    }


def pom(artifact: str, version: str, *deps: str, group: str = "org.example") -> str:
    """A pom; each dep is ``artifact:version[:scope][!exclusion-group:exclusion-artifact]``."""
    body = []
    for dep in deps:
        coords, _, exclusion = dep.partition("!")
        name, dep_version, *scope = coords.split(":")
        excl = ""
        if exclusion:
            g, a = exclusion.split(":")
            excl = (f"<exclusions><exclusion><groupId>{g}</groupId><artifactId>{a}</artifactId>"
                    "</exclusion></exclusions>")
        body.append(f"<dependency><groupId>{group}</groupId><artifactId>{name}</artifactId>"
                    f"<version>{dep_version}</version>"
                    + (f"<scope>{scope[0]}</scope>" if scope else "") + excl + "</dependency>")
    return (f'<project xmlns="http://maven.apache.org/POM/4.0.0"><groupId>{group}</groupId>'
            f"<artifactId>{artifact}</artifactId><version>{version}</version>"
            f"<dependencies>{''.join(body)}</dependencies></project>")


def repo(*poms: tuple[str, str, str]) -> dict[str, str]:
    return {f"p/repository/org/example/{a}/{v}/{a}-{v}.pom": text for a, v, text in poms}


def test_cycles_end_and_wildcard_exclusions_hold_for_the_subtree(tmp_path):
    files = {"p/pom.xml": pom("app", "1", "a:1", "w:1!*:*")}
    files |= repo(
        ("a", "1", pom("a", "1", "b:1")),
        ("b", "1", pom("b", "1", "a:2", "c:1")),  # a:2 loses to the nearer a:1
        ("a", "2", pom("a", "2", "never:1")),
        ("c", "1", pom("c", "1", "a:1", "b:1")),  # back to the top: a cycle
        ("w", "1", pom("w", "1", "x:1")),
        ("x", "1", pom("x", "1")),
    )
    assert {n: v for n, (v, _) in at(scan(tmp_path, files), "p/pom.xml").items()} == {
        "org.example:a": "1", "org.example:b": "1", "org.example:c": "1", "org.example:w": "1"}


def test_a_hard_requirement_wins_over_a_nearer_soft_version(tmp_path):
    files = {"p/pom.xml": pom("app", "1", "a:1", "b:1")}
    files |= repo(
        ("a", "1", pom("a", "1", "c:1")),
        ("b", "1", pom("b", "1", "d:1")),
        ("d", "1", pom("d", "1", "c:[2]")),
    )
    assert at(scan(tmp_path, files), "p/pom.xml")["org.example:c"] == ("2", "runtime")


def test_depth_and_count_are_bounded(tmp_path, monkeypatch):
    chain = 60
    files = {"p/pom.xml": pom("app", "1", "n0:1")}
    files |= repo(*[(f"n{i}", "1", pom(f"n{i}", "1", f"n{i + 1}:1")) for i in range(chain)])
    (tmp_path / "deep").mkdir()
    (tmp_path / "many").mkdir()
    got = at(scan(tmp_path / "deep", files), "p/pom.xml")
    assert len(got) == java._DEPTH_MAX  # n0 at depth 1 ... n31 at depth 32
    monkeypatch.setattr(java, "_TRANSITIVE_MAX", 10)
    assert len(at(scan(tmp_path / "many", files), "p/pom.xml")) == 10


def test_malformed_dependency_poms_are_skipped(tmp_path):
    files = {"p/pom.xml": pom("app", "1", "a:1", "b:1")}
    files |= repo(
        ("a", "1", "<project><unclosed>"),  # not XML
        ("b", "1", pom("b", "1", "c:${undefined}", "d:[1,2)", "e:1")),
        ("e", "1", '<!DOCTYPE project [<!ENTITY x "y">]><project/>'),
    )
    assert {n: v for n, (v, _) in at(scan(tmp_path, files), "p/pom.xml").items()} == {
        "org.example:a": "1", "org.example:b": "1", "org.example:e": "1"}


@pytest.fixture
def log4j_package(tmp_path) -> Path:
    """A project whose only mention of log4j-core is in a dependency's pom."""
    package = tmp_path / "service_2_0.tar.gz"
    with tarfile.open(package, "w:gz") as tar:
        for name, text in {
            "service-2.0/pom.xml": pom("service", "2.0", "logging:1.0", group="com.example"),
            "service-2.0/.m2/repository/com/example/logging/1.0/logging-1.0.pom": (
                '<project xmlns="http://maven.apache.org/POM/4.0.0"><groupId>com.example</groupId>'
                "<artifactId>logging</artifactId><version>1.0</version><dependencies><dependency>"
                "<groupId>org.apache.logging.log4j</groupId><artifactId>log4j-core</artifactId>"
                "<version>2.14.1</version></dependency></dependencies></project>"),
        }.items():
            source = tmp_path / name.replace("/", "_")
            source.write_text(text)
            tar.add(source, name)
    return package


def test_transitive_dependencies_through_the_scan(tmp_path, clamd, log4j_package):
    from scanner.model import Settings
    from scanner.osv import OsvDatabase
    from scanner.pipeline import scan_package

    settings = Settings(osv_paths=(OSV,), clamd=clamd.address, scratch_dir=tmp_path)
    result = scan_package(log4j_package, settings, osv=OsvDatabase.load([OSV]))
    where = "service_2_0.tar.gz!/service-2.0/pom.xml"
    assert {(c.name, c.version, c.location, c.scope) for c in result.components} == {
        ("com.example:logging", "1.0", where, "runtime"),
        ("org.apache.logging.log4j:log4j-core", "2.14.1", where, "runtime"),
    }
    assert [f.location for f in result.findings if "GHSA-p6xc-xr62-6r2g" in f.ids] == [where]
    assert result.verdict == "rejected"

