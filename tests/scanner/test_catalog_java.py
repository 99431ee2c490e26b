"""Java sources: jars without pom.properties, Jenkins plugins, pom.xml projects, gradle.lockfile."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from scanner.catalogers import java

from .test_catalog import found, manifest, pom, purls, scan, zip_bytes

LOCKFILES = Path(__file__).parents[1] / "data" / "lockfiles"


def tree(root: Path, under: str) -> dict[str, bytes]:
    return {f"{under}/{p.relative_to(root)}": p.read_bytes() for p in root.rglob("*") if p.is_file()}


# -- archives -------------------------------------------------------------------------

#: The head of commons-lang3 3.12.0's own META-INF/maven/.../pom.xml: the version is
#: its own, the group comes from the path.
LANG3_POM = """<?xml version="1.0" encoding="UTF-8"?>
<project xmlns="http://maven.apache.org/POM/4.0.0" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
  <parent>
    <groupId>org.apache.commons</groupId>
    <artifactId>commons-parent</artifactId>
    <version>52</version>
  </parent>
  <modelVersion>4.0.0</modelVersion>
  <artifactId>commons-lang3</artifactId>
  <version>3.12.0</version>
  <name>Apache Commons Lang</name>
</project>
"""

#: A module whose version is its parent's.
CHILD_POM = """<project xmlns="http://maven.apache.org/POM/4.0.0">
  <parent><groupId>io.netty</groupId><artifactId>netty-parent</artifactId><version>4.1.86.Final</version></parent>
  <artifactId>netty-codec-http</artifactId>
</project>
"""


def test_jar_with_only_a_pom_xml(tmp_path):
    lang3 = zip_bytes({"META-INF/maven/org.apache.commons/commons-lang3/pom.xml": LANG3_POM})
    netty = zip_bytes({"META-INF/maven/io.netty/netty-codec-http/pom.xml": CHILD_POM})
    both = zip_bytes(
        {
            "META-INF/maven/org.apache.commons/commons-lang3/pom.xml": LANG3_POM,
            "META-INF/maven/org.apache.commons/commons-lang3/pom.properties": pom(
                "org.apache.commons", "commons-lang3", "3.12.0"
            ),
        }
    )
    components = scan(tmp_path, {"lib/a.jar": lang3, "lib/b.jar": netty, "lib/c.jar": both})
    assert found(components) == {
        (
            "Maven",
            "org.apache.commons:commons-lang3",
            "3.12.0",
            "lib/a.jar!/META-INF/maven/org.apache.commons/commons-lang3/pom.xml",
        ),
        (
            "Maven",
            "io.netty:netty-codec-http",
            "4.1.86.Final",
            "lib/b.jar!/META-INF/maven/io.netty/netty-codec-http/pom.xml",
        ),
        (
            "Maven",
            "org.apache.commons:commons-lang3",
            "3.12.0",
            "lib/c.jar!/META-INF/maven/org.apache.commons/commons-lang3/pom.properties",
        ),
    }


def test_manifest_only_jars_need_a_real_group_id(tmp_path):
    # The manifests of commons-lang3 3.12.0 and jackson-core 2.13.4, their Maven
    # descriptors taken out (as shading or repackaging leaves them).
    lang3 = manifest(
        Implementation_Title="Apache Commons Lang",
        Automatic_Module_Name="org.apache.commons.lang3",
        Bundle_SymbolicName="org.apache.commons.lang3",
        Implementation_Version="3.12.0",
        Bundle_Version="3.12.0",
    )
    jackson = manifest(
        Implementation_Title="Jackson-core",
        Implementation_Vendor_Id="com.fasterxml.jackson.core",
        Implementation_Version="2.13.4",
        Bundle_SymbolicName="com.fasterxml.jackson.core.jackson-core",
    )
    felix = manifest(Bundle_SymbolicName="org.apache.felix.framework", Bundle_Version="7.0.5")
    titled = manifest(Implementation_Title="Jackson-core", Implementation_Version="2.13.4")
    files = {
        "lib/commons-lang3-3.12.0.jar": zip_bytes({"META-INF/MANIFEST.MF": lang3}),
        "lib/jackson-core-2.13.4.jar": zip_bytes({"META-INF/MANIFEST.MF": jackson}),
        "lib/org.apache.felix.framework-7.0.5.jar": zip_bytes({"META-INF/MANIFEST.MF": felix}),
        # No group id anywhere, a renamed file, a version the manifest does not state.
        "lib/jackson-core-2.13.4-copy.jar": zip_bytes({"META-INF/MANIFEST.MF": titled}),
        "lib/core.jar": zip_bytes({"META-INF/MANIFEST.MF": jackson, "a": "renamed"}),
        "lib/jackson-core-2.99.jar": zip_bytes({"META-INF/MANIFEST.MF": jackson, "b": "other"}),
        # maven-archiver's default entries of a project with no <name>: titled by its artifact id.
        "lib/plugin.jar": zip_bytes({"META-INF/MANIFEST.MF": manifest(
            Implementation_Vendor_Id="com.example", Implementation_Title="jenkins-plugin",
            Implementation_Version="1.0.0")}),
        "lib/named.jar": zip_bytes({"META-INF/MANIFEST.MF": manifest(
            Implementation_Vendor_Id="org.example", Implementation_Title="Example Library",
            Implementation_Version="1.0.0")}),
    }
    components = scan(tmp_path, files)
    assert found(components) == {
        (
            "Maven",
            "org.apache.commons:commons-lang3",
            "3.12.0",
            "lib/commons-lang3-3.12.0.jar!/META-INF/MANIFEST.MF",
        ),
        (
            "Maven",
            "com.fasterxml.jackson.core:jackson-core",
            "2.13.4",
            "lib/jackson-core-2.13.4.jar!/META-INF/MANIFEST.MF",
        ),
        ("Maven", "com.example:jenkins-plugin", "1.0.0", "lib/plugin.jar!/META-INF/MANIFEST.MF"),
    }  # felix: the artifact is the whole symbolic name, its group any prefix of it
    assert all(":" in c.name for c in components)
    assert "pkg:maven/com.fasterxml.jackson.core/jackson-core@2.13.4" in purls(components)


@pytest.mark.parametrize(
    ("symbolic", "artifact", "group"),
    [
        ("com.fasterxml.jackson.core.jackson-databind", "jackson-databind", "com.fasterxml.jackson.core"),
        ("org.apache.commons.text", "commons-text", "org.apache.commons"),
        ("org.apache.commons.lang3", "commons-lang3", "org.apache.commons"),
        ("org.apache.commons.lang3", "lang", None),
        ("Jackson-core", "jackson-core", None),
        ("", "x", None),
    ],
)
def test_bundle_symbolic_name_back_to_the_group(symbolic, artifact, group):
    assert java._bundle_group(symbolic, artifact) == group


def test_pom_properties_relocated_inside_an_archive(tmp_path):
    shaded = zip_bytes(
        {
            "META-INF/maven/io.quarkus.gizmo/gizmo/pom.properties": pom("io.quarkus.gizmo", "gizmo", "1.1"),
            "shaded/jackson/pom.properties": pom("com.fasterxml.jackson.core", "jackson-databind", "2.12.3"),
            "shaded/partial/pom.properties": "groupId=a.b\nversion=1.0\n",
        }
    )
    components = scan(
        tmp_path,
        {"lib/gizmo-1.1.jar": shaded, "src/target/maven-archiver/pom.properties": pom("com.acme", "app", "1.0")},
    )
    assert found(components) == {
        (
            "Maven",
            "io.quarkus.gizmo:gizmo",
            "1.1",
            "lib/gizmo-1.1.jar!/META-INF/maven/io.quarkus.gizmo/gizmo/pom.properties",
        ),
        (
            "Maven",
            "com.fasterxml.jackson.core:jackson-databind",
            "2.12.3",
            "lib/gizmo-1.1.jar!/shaded/jackson/pom.properties",
        ),
    }  # not the partial one, nor the build directory of the package's own sources


def test_jenkins_plugins(tmp_path):
    # The main section of git.hpi 4.11.0's manifest.
    git = manifest(
        Group_Id="org.jenkins-ci.plugins",
        Short_Name="git",
        Long_Name="Jenkins Git plugin",
        Plugin_Version="4.11.0",
        Jenkins_Version="2.289.1",
        Implementation_Title="git",
        Implementation_Version="4.11.0",
    )
    hpi = zip_bytes(
        {
            "META-INF/MANIFEST.MF": git,
            "WEB-INF/lib/git.jar": zip_bytes({"META-INF/MANIFEST.MF": manifest(Created_By="Maven")}),
            "WEB-INF/lib/joda-time-2.10.10.jar": zip_bytes(
                {
                    "META-INF/maven/joda-time/joda-time/pom.properties": pom(
                        "joda-time", "joda-time", "2.10.10"
                    )
                }
            ),
        }
    )
    # A plugin whose pom.properties names it already is reported once.
    described = zip_bytes(
        {
            "META-INF/MANIFEST.MF": manifest(
                Group_Id="io.jenkins.plugins", Short_Name="caffeine-api", Plugin_Version="2.9.2-29.v717aac953ff3"
            ),
            "META-INF/maven/io.jenkins.plugins/caffeine-api/pom.properties": pom(
                "io.jenkins.plugins", "caffeine-api", "2.9.2-29.v717aac953ff3"
            ),
        }
    )
    components = scan(
        tmp_path,
        {"jenkins/plugins/git.jpi": hpi, "jenkins/plugins/caffeine-api.hpi": described},
    )
    plugins = "jenkins/plugins"
    assert found(components) == {
        ("Maven", "org.jenkins-ci.plugins:git", "4.11.0", f"{plugins}/git.jpi!/META-INF/MANIFEST.MF"),
        (
            "Maven",
            "joda-time:joda-time",
            "2.10.10",
            f"{plugins}/git.jpi!/WEB-INF/lib/joda-time-2.10.10.jar!/META-INF/maven/joda-time/joda-time/pom.properties",
        ),
        (
            "Maven",
            "io.jenkins.plugins:caffeine-api",
            "2.9.2-29.v717aac953ff3",
            f"{plugins}/caffeine-api.hpi!/META-INF/maven/io.jenkins.plugins/caffeine-api/pom.properties",
        ),
    }
    assert "pkg:maven/org.jenkins-ci.plugins/git@4.11.0" in purls(components)


# -- pom.xml ----------------------------------------------------------------------------


def test_pom_projects_resolve_properties_parents_and_managed_versions(tmp_path):
    files = tree(LOCKFILES / "maven" / "shop", "src/shop")
    components = scan(tmp_path, files)
    web = "src/shop/web/pom.xml"
    assert found(components) == {
        ("Maven", "org.slf4j:slf4j-api", "1.7.36", "src/shop/pom.xml"),
        ("Maven", "org.slf4j:slf4j-api", "1.7.36", web),  # inherited from the parent
        ("Maven", "com.example.shop:shop-core", "1.4.0", web),  # ${project.version}
        ("Maven", "org.apache.logging.log4j:log4j-core", "2.14.1", web),  # managed, parent property
        ("Maven", "com.fasterxml.jackson.core:jackson-databind", "2.13.4", web),  # parent property
        ("Maven", "com.google.guava:guava", "31.1-jre", web),  # the imported BOM
        ("Maven", "jakarta.servlet:jakarta.servlet-api", "5.0.0", web),
        ("Maven", "org.postgresql:postgresql", "42.5.0", web),
        ("Maven", "org.junit.jupiter:junit-jupiter", "5.9.1", web),
    }  # not mockito (a version range), not the dependency on an undefined property
    scopes = {c.name: c.scope for c in components if c.location.endswith(web)}
    assert scopes["org.junit.jupiter:junit-jupiter"] == "dev"  # test scope, from management
    assert scopes["jakarta.servlet:jakarta.servlet-api"] == "optional"  # provided
    assert scopes["org.postgresql:postgresql"] == "optional"  # <optional>true</optional>
    assert scopes["org.apache.logging.log4j:log4j-core"] == "runtime"
    assert "pkg:maven/com.google.guava/guava@31.1-jre" in purls(components)


def test_pom_parent_found_by_coordinates_and_relative_path(tmp_path):
    parent = """<project><groupId>org.acme</groupId><artifactId>base</artifactId><version>2</version>
      <properties><netty.version>4.1.42.Final</netty.version></properties></project>"""
    child = """<project><parent><groupId>org.acme</groupId><artifactId>base</artifactId><version>2</version>
      <relativePath>../../parents/base.xml</relativePath></parent><artifactId>app</artifactId>
      <dependencies><dependency><groupId>io.netty</groupId><artifactId>netty-handler</artifactId>
      <version>${netty.version}</version></dependency></dependencies></project>"""
    # The same child with the parent only in a local repository (found by its coordinates).
    orphan = child.replace("../../parents/base.xml", "../nothing-here/pom.xml")
    components = scan(
        tmp_path,
        {
            "x/parents/base.xml": parent,
            "x/a/b/pom.xml": child,
            "y/app/pom.xml": orphan,
            "y/.m2/repository/org/acme/base/2/base-2.pom": parent,
        },
    )
    assert found(components) == {
        ("Maven", "io.netty:netty-handler", "4.1.42.Final", "x/a/b/pom.xml"),
        ("Maven", "io.netty:netty-handler", "4.1.42.Final", "y/app/pom.xml"),
    }


def test_pom_parent_cycle_and_self_reference_end(tmp_path):
    a = """<project><parent><groupId>g</groupId><artifactId>b</artifactId><version>1</version>
      <relativePath>../b/pom.xml</relativePath></parent><artifactId>a</artifactId>
      <properties><p>${p}</p></properties>
      <dependencies><dependency><groupId>x.y</groupId><artifactId>z</artifactId><version>${p}</version>
      </dependency><dependency><groupId>x.y</groupId><artifactId>w</artifactId><version>1.0</version>
      </dependency></dependencies></project>"""
    b = a.replace("<artifactId>b</artifactId>", "<artifactId>a</artifactId>", 1).replace(
        "<artifactId>a</artifactId>\n", "<artifactId>b</artifactId>\n"
    ).replace("../b/pom.xml", "../a/pom.xml")
    components = scan(tmp_path, {"p/a/pom.xml": a, "p/b/pom.xml": b})
    assert {(c.name, c.version) for c in components} == {("x.y:w", "1.0")}


# -- gradle.lockfile --------------------------------------------------------------------


def test_gradle_lockfile(tmp_path):
    lock = (LOCKFILES / "gradle" / "gradle.lockfile").read_text()
    components = scan(tmp_path, {"app/gradle.lockfile": lock, "app/buildscript-gradle.lockfile": "x\n"})
    at = "app/gradle.lockfile"
    assert found(components) == {
        ("Maven", "ch.qos.logback:logback-classic", "1.2.11", at),
        ("Maven", "ch.qos.logback:logback-core", "1.2.11", at),
        ("Maven", "com.fasterxml.jackson.core:jackson-databind", "2.13.4.2", at),
        ("Maven", "net.bytebuddy:byte-buddy", "1.12.19", at),
        ("Maven", "org.apache.logging.log4j:log4j-core", "2.14.1", at),
        ("Maven", "org.junit.jupiter:junit-jupiter-api", "5.9.1", at),
        ("Maven", "org.mockito:mockito-core", "4.8.1", at),
        ("Maven", "org.projectlombok:lombok", "1.18.24", at),
    }
    scopes = {c.name: c.scope for c in components}
    assert scopes["org.mockito:mockito-core"] == "dev"
    assert scopes["net.bytebuddy:byte-buddy"] == "dev"
    assert scopes["org.apache.logging.log4j:log4j-core"] == "runtime"
    assert scopes["org.projectlombok:lombok"] == "runtime"


@pytest.mark.parametrize(
    ("configurations", "scope"),
    [
        ("testCompileClasspath,testRuntimeClasspath", "dev"),
        ("integrationTestRuntimeClasspath", "dev"),
        ("debugUnitTestRuntimeClasspath,androidTestImplementation", "dev"),
        ("compileClasspath,testCompileClasspath", "runtime"),
        ("runtimeClasspath", "runtime"),
        ("contestRuntimeClasspath", "runtime"),
    ],
)
def test_gradle_configuration_scope(configurations, scope):
    assert java._gradle_scope(configurations) == scope


# -- malformed ---------------------------------------------------------------------------


def test_malformed_java_metadata_is_skipped(tmp_path):
    bomb = (
        '<?xml version="1.0"?><!DOCTYPE p [<!ENTITY a "aaaaaaaaaa">'
        '<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;">]><project><version>&b;</version></project>'
    )
    components = scan(
        tmp_path,
        {
            "a/pom.xml": "<project><dependencies><dependency>",
            "b/pom.xml": bomb,
            "c/pom.xml": b"\xff\xfe<\x00p\x00",
            "d/pom.xml": "<notaproject/>",
            "e/gradle.lockfile": "\x00\x01 garbage=== : :",
            "f/x.jar": zip_bytes({"META-INF/maven/g/a/pom.xml": "<project><version>"}),
            "g/y-1.0.jar": zip_bytes({"META-INF/MANIFEST.MF": b"\xff\xfe\x00\x00"}),
        },
    )
    assert components == []


# -- through the whole scan --------------------------------------------------------------

OSV = Path(__file__).parents[1] / "data" / "corpus" / "osv"


@pytest.fixture
def scan_package_at(clamd, tmp_path):
    from scanner.model import Settings
    from scanner.osv import OsvDatabase
    from scanner.pipeline import scan_package

    def run(package: Path):
        settings = Settings(osv_paths=(OSV,), clamd=clamd.address, scratch_dir=tmp_path)
        return scan_package(package, settings, osv=OsvDatabase.load([OSV]))

    return run


def test_java_sources_through_the_scan(tmp_path, scan_package_at):
    import tarfile

    source = tmp_path / "source"
    shutil.copytree(LOCKFILES / "maven" / "shop", source / "shop-1.4.0" / "src")
    shutil.copy(LOCKFILES / "gradle" / "gradle.lockfile", source / "shop-1.4.0" / "gradle.lockfile")
    (source / "shop-1.4.0" / "lib").mkdir()
    (source / "shop-1.4.0" / "lib" / "log4j-core.jar").write_bytes(
        zip_bytes({"META-INF/maven/org.apache.logging.log4j/log4j-core/pom.xml": LANG3_POM.replace(
            "commons-lang3", "log4j-core").replace("3.12.0", "2.14.1")})
    )
    package = tmp_path / "shop_1_4_0.tar.gz"
    with tarfile.open(package, "w:gz") as tar:
        tar.add(source / "shop-1.4.0", "shop-1.4.0")
    result = scan_package_at(package)

    base = "shop_1_4_0.tar.gz!/shop-1.4.0"
    log4j = {
        (c.location, c.scope) for c in result.components
        if c.name == "org.apache.logging.log4j:log4j-core" and c.version == "2.14.1"
    }
    assert log4j == {
        (f"{base}/src/web/pom.xml", "runtime"),
        (f"{base}/gradle.lockfile", "runtime"),
        (f"{base}/lib/log4j-core.jar!/META-INF/maven/org.apache.logging.log4j/log4j-core/pom.xml", "runtime"),
    }
    # One finding per component and advisory, at its first location.
    vulnerable = [f.location for f in result.findings if "GHSA-p6xc-xr62-6r2g" in f.ids]
    assert vulnerable == [f"{base}/gradle.lockfile"]
    assert result.verdict == "rejected"
    assert ("org.mockito:mockito-core", "4.8.1", "dev") in {
        (c.name, c.version, c.scope) for c in result.components
    }


def test_pom_parent_values_take_the_child_properties(tmp_path):
    # As Maven builds the model: inherit first, interpolate after.
    parent = """<project><groupId>com.example</groupId><artifactId>parent</artifactId>
      <version>1.0.0</version><properties><bom.version>1.0.0</bom.version>
      <api.version>5.0.1</api.version></properties>
      <dependencyManagement><dependencies>
        <dependency><groupId>org.example</groupId><artifactId>example-bom</artifactId>
          <version>${bom.version}</version><type>pom</type><scope>import</scope></dependency>
        <dependency><groupId>org.example</groupId><artifactId>direct</artifactId>
          <version>7.0.0</version></dependency>
      </dependencies></dependencyManagement>
      <dependencies><dependency><groupId>org.example</groupId><artifactId>inherited</artifactId>
        <version>${api.version}</version></dependency></dependencies></project>"""
    child = """<project><parent><groupId>com.example</groupId><artifactId>parent</artifactId>
      <version>1.0.0</version></parent><artifactId>app</artifactId>
      <properties><bom.version>2.0.0</bom.version><api.version>1.0.1</api.version></properties>
      <dependencies>
        <dependency><groupId>org.example</groupId><artifactId>example-api</artifactId></dependency>
        <dependency><groupId>org.example</groupId><artifactId>direct</artifactId></dependency>
      </dependencies></project>"""

    def bom(version, api):
        return f"""<project><groupId>org.example</groupId><artifactId>example-bom</artifactId>
          <version>{version}</version><packaging>pom</packaging><dependencyManagement><dependencies>
          <dependency><groupId>org.example</groupId><artifactId>example-api</artifactId>
            <version>{api}</version></dependency>
          <dependency><groupId>org.example</groupId><artifactId>direct</artifactId>
            <version>9.9.9</version></dependency>
          </dependencies></dependencyManagement></project>"""

    repository = "p/.m2/repository/org/example/example-bom"
    components = scan(
        tmp_path,
        {
            "p/pom.xml": parent,
            "p/app/pom.xml": child,
            f"{repository}/1.0.0/example-bom-1.0.0.pom": bom("1.0.0", "1.7.30"),
            f"{repository}/2.0.0/example-bom-2.0.0.pom": bom("2.0.0", "2.0.0"),
        },
    )
    app = {(c.name, c.version) for c in components if c.location.endswith("p/app/pom.xml")}
    assert app == {
        ("org.example:example-api", "2.0.0"),  # the BOM the child's ${bom.version} names
        ("org.example:inherited", "1.0.1"),  # the parent's ${api.version}, the child's value
        ("org.example:direct", "7.0.0"),  # what a pom manages wins over what it imports
    }
