""".NET sources: packages.lock.json, MSBuild projects with central package management,
packages.config, .nupkg and .nuspec."""

from __future__ import annotations

import tarfile
from pathlib import Path

import pytest

from scanner.catalogers import dotnet

from .test_catalog import found, purls, scan, zip_bytes

NUGET = Path(__file__).parents[1] / "data" / "lockfiles" / "nuget"


def tree(root: Path, under: str) -> dict[str, bytes]:
    return {f"{under}/{p.relative_to(root)}": p.read_bytes() for p in root.rglob("*") if p.is_file()}


def nuspec(name: str, version: str, extra: str = "") -> str:
    return f"""<?xml version="1.0" encoding="utf-8"?>
<package xmlns="http://schemas.microsoft.com/packaging/2013/05/nuspec.xsd">
  <metadata minClientVersion="2.12">
    <id>{name}</id>
    <version>{version}</version>
    <authors>James Newton-King</authors>
    <requireLicenseAcceptance>false</requireLicenseAcceptance>{extra}
    <description>Json.NET is a popular high-performance JSON framework for .NET</description>
  </metadata>
</package>
"""


def nupkg(name: str, version: str) -> bytes:
    """A .nupkg as `dotnet pack` lays it out."""
    return zip_bytes(
        {
            "_rels/.rels": '<?xml version="1.0" encoding="utf-8"?><Relationships/>',
            f"{name}.nuspec": nuspec(name, version),
            f"lib/netstandard2.0/{name}.dll": b"MZ\x90\x00",
            "[Content_Types].xml": '<?xml version="1.0" encoding="utf-8"?><Types/>',
        }
    )


def test_packages_lock_json(tmp_path):
    files = {"app/packages.lock.json": (NUGET / "Shop/src/Shop.Web/packages.lock.json").read_bytes()}
    components = scan(tmp_path, files)
    at = "app/packages.lock.json"
    assert found(components) == {
        ("NuGet", "Microsoft.Extensions.Http", "6.0.0", at),
        ("NuGet", "Newtonsoft.Json", "12.0.1", at),
        ("NuGet", "Serilog", "2.12.0", at),
        ("NuGet", "Microsoft.Extensions.DependencyInjection.Abstractions", "6.0.0", at),
        ("NuGet", "Microsoft.Extensions.Logging", "6.0.0", at),
        ("NuGet", "System.Text.Encodings.Web", "4.5.0", at),
    }  # not shop.core: a project of the solution
    assert {c.scope for c in components} == {"unknown"}


def test_projects_with_central_package_management(tmp_path):
    components = scan(tmp_path, {k: v for k, v in tree(NUGET / "Shop", "Shop").items()
                                 if not k.endswith("packages.lock.json")})
    web, tests = "Shop/src/Shop.Web/Shop.Web.csproj", "Shop/src/Shop.Tests/Shop.Tests.csproj"
    assert found(components) == {
        ("NuGet", "Newtonsoft.Json", "12.0.1", web),
        ("NuGet", "Serilog", "2.12.0", web),  # $(SerilogVersion) of Directory.Packages.props
        ("NuGet", "Microsoft.Extensions.Http", "6.0.0", web),  # [6.0.0]
        ("NuGet", "Microsoft.SourceLink.GitHub", "1.1.1", web),
        ("NuGet", "Dapper", "2.0.123", web),  # VersionOverride
        ("NuGet", "xunit", "2.4.2", tests),
        ("NuGet", "Moq", "4.18.2", tests),
        ("NuGet", "StyleCop.Analyzers", "1.1.118", "Shop/Directory.Packages.props"),
    }  # not System.Text.Json (a range) nor coverlet.collector (3.1.*)
    scopes = {c.name: c.scope for c in components}
    assert scopes["Microsoft.SourceLink.GitHub"] == "dev"  # PrivateAssets="All"
    assert scopes["StyleCop.Analyzers"] == "dev"  # a global reference is private by default
    assert scopes["Newtonsoft.Json"] == "runtime"
    assert "pkg:nuget/Newtonsoft.Json@12.0.1" in purls(components)


def test_project_versions_and_properties(tmp_path):
    project = """<Project Sdk="Microsoft.NET.Sdk">
      <PropertyGroup><AutoMapperVersion>10.1.1</AutoMapperVersion></PropertyGroup>
      <ItemGroup>
        <PackageReference Include="AutoMapper" Version="$(AutoMapperVersion)" />
        <PackageReference Include="Polly"><Version>7.2.3</Version></PackageReference>
        <PackageReference Include="MediatR" Version="$(MediatRVersion)" />
        <PackageReference Update="NLog" Version="4.7.15" />
        <PackageReference Include="Undefined" Version="$(Nowhere)" />
      </ItemGroup>
      <PackageReference Include="NotAnItem" Version="1.0.0" /></Project>"""
    build_props = """<Project><PropertyGroup><MediatRVersion>9.0.0</MediatRVersion></PropertyGroup></Project>"""
    components = scan(
        tmp_path,
        {"repo/Directory.Build.props": build_props, "repo/src/Api/Api.fsproj": project},
    )
    at = "repo/src/Api/Api.fsproj"
    assert found(components) == {
        ("NuGet", "AutoMapper", "10.1.1", at),
        ("NuGet", "Polly", "7.2.3", at),
        ("NuGet", "MediatR", "9.0.0", at),
        ("NuGet", "NLog", "4.7.15", at),
    }


@pytest.mark.parametrize(
    ("value", "version"),
    [("12.0.1", "12.0.1"), ("[6.0.0]", "6.0.0"), ("[1.0, 2.0)", ""), ("1.*", ""),
     ("(,1.0]", ""), ("$(X)", ""), ("", "")],
)
def test_exact_version(value, version):
    assert dotnet.exact_version(value) == version


def test_packages_config(tmp_path):
    components = scan(tmp_path, {"site/packages.config": (NUGET / "Legacy/packages.config").read_bytes()})
    at = "site/packages.config"
    assert {(c.name, c.version, c.scope) for c in components} == {
        ("jQuery", "1.8.2", "runtime"),
        ("Microsoft.AspNet.Mvc", "4.0.20710.0", "runtime"),
        ("Newtonsoft.Json", "4.5.11", "runtime"),
        ("Microsoft.CodeDom.Providers.DotNetCompilerPlatform", "2.0.1", "dev"),
    }
    assert {c.location.split("!/", 1)[1] for c in components} == {at}


def test_nupkg_and_restored_nuspec(tmp_path):
    components = scan(
        tmp_path,
        {
            "feed/Newtonsoft.Json.12.0.1.nupkg": nupkg("Newtonsoft.Json", "12.0.1"),
            # The global packages folder, and a packages.config solution's packages/ folder.
            "home/.nuget/packages/serilog/2.10.0/serilog.nuspec": nuspec("Serilog", "2.10.0"),
            "sln/packages/jQuery.1.8.2/jQuery.nuspec": nuspec("jQuery", "1.8.2"),
            # A project's recipe and a template: not packages shipped.
            "src/MyLib/MyLib.nuspec": nuspec("MyLib", "1.0.0"),
            "src/Other/Other.nuspec": nuspec("Other", "$version$"),
        },
    )
    assert found(components) == {
        ("NuGet", "Newtonsoft.Json", "12.0.1", "feed/Newtonsoft.Json.12.0.1.nupkg!/Newtonsoft.Json.nuspec"),
        ("NuGet", "Serilog", "2.10.0", "home/.nuget/packages/serilog/2.10.0/serilog.nuspec"),
        ("NuGet", "jQuery", "1.8.2", "sln/packages/jQuery.1.8.2/jQuery.nuspec"),
    }


def test_malformed_dotnet_metadata_is_skipped(tmp_path):
    components = scan(
        tmp_path,
        {
            "a/packages.lock.json": '{"dependencies": {"net6.0": ["x"]}}',
            "b/packages.lock.json": "{" * 50_000,
            "c/packages.config": "<packages><package id='x'",
            "d/x.csproj": '<!DOCTYPE p [<!ENTITY a "b">]><Project>&a;</Project>',
            "e/y.csproj": b"\xff\xfe\x00\x00<",
            "f/Directory.Packages.props": "<Project><ItemGroup><PackageVersion Include=",
            "g/z.nupkg": zip_bytes({"z.nuspec": "<package><metadata><id>z</id>"}),
        },
    )
    assert components == []


# -- through the whole scan ------------------------------------------------------------------

OSV = Path(__file__).parents[1] / "data" / "corpus" / "osv"


def test_dotnet_sources_through_the_scan(tmp_path, clamd):
    from scanner.model import Settings
    from scanner.osv import OsvDatabase
    from scanner.pipeline import scan_package

    nupkg_file = tmp_path / "Serilog.2.10.0.nupkg"
    nupkg_file.write_bytes(nupkg("Serilog", "2.10.0"))
    with tarfile.open(tmp_path / "with.tar.gz", "w:gz") as tar:
        tar.add(NUGET / "Shop", "shop/Shop")
        tar.add(NUGET / "Legacy", "shop/Legacy")
        tar.add(nupkg_file, "shop/feed/Serilog.2.10.0.nupkg")
    settings = Settings(osv_paths=(OSV,), clamd=clamd.address, scratch_dir=tmp_path)
    result = scan_package(tmp_path / "with.tar.gz", settings, osv=OsvDatabase.load([OSV]))
    got = {(c.name, c.version, c.location.split("!/", 1)[1]) for c in result.components}
    assert {
        ("Newtonsoft.Json", "12.0.1", "shop/Shop/src/Shop.Web/Shop.Web.csproj"),
        ("Newtonsoft.Json", "12.0.1", "shop/Shop/src/Shop.Web/packages.lock.json"),
        ("Newtonsoft.Json", "4.5.11", "shop/Legacy/packages.config"),
        ("Serilog", "2.10.0", "shop/feed/Serilog.2.10.0.nupkg!/Serilog.nuspec"),
    } <= got
    assert {c.ecosystem for c in result.components} == {"NuGet"}
    assert result.verdict == "approved"  # the corpus holds no NuGet advisory
