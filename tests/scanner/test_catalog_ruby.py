"""Ruby: Bundler's Gemfile.lock and the gemspecs RubyGems writes when it installs a gem.

The samples under tests/data/lockfiles/ruby/ were written by Bundler and RubyGems
(see the README there).
"""

from __future__ import annotations

import shutil
import tarfile
from pathlib import Path

import pytest

from .test_catalog import found, purls, scan

LOCKFILES = Path(__file__).parents[1] / "data" / "lockfiles" / "ruby"

LOCKED = {
    ("digest", "3.1.0"), ("io-wait", "0.2.1"), ("minitest", "5.15.0"), ("net-imap", "0.2.3"),
    ("net-protocol", "0.1.2"), ("power_assert", "2.0.1"), ("rake", "13.0.6"),
    ("strscan", "3.0.1"), ("timeout", "0.2.0"), ("webrick", "1.8.1"),
}


def test_bundler_lock_and_installed_gemspec(tmp_path):
    components = scan(
        tmp_path,
        {
            "app/Gemfile.lock": (LOCKFILES / "bundler" / "Gemfile.lock").read_bytes(),
            "app/Gemfile": (LOCKFILES / "bundler" / "Gemfile").read_bytes(),
            "usr/local/bundle/specifications/shop_helpers-0.3.1.gemspec": (
                LOCKFILES / "installed" / "specifications" / "shop_helpers-0.3.1.gemspec"
            ).read_bytes(),
        },
    )
    assert {(c.name, c.version, c.scope) for c in components if "Gemfile" in c.location} == {
        (n, v, "unknown") for n, v in LOCKED
    }
    assert (
        "RubyGems", "shop_helpers", "0.3.1",
        "usr/local/bundle/specifications/shop_helpers-0.3.1.gemspec",
    ) in found(components)
    assert {c.scope for c in components if c.name == "shop_helpers"} == {"runtime"}
    assert {c.ecosystem for c in components} == {"RubyGems"}
    assert "pkg:gem/webrick@1.8.1" in purls(components)


GEMFILE_LOCK = """\
GIT
  remote: https://github.com/rails/rails.git
  revision: 8d8f0a8e8c8a4f3a0b1c2d3e4f5a6b7c8d9e0f1a
  branch: main
  specs:
    activesupport (7.1.0.alpha)
      concurrent-ruby (~> 1.0, >= 1.0.2)

PATH
  remote: .
  specs:
    myapp (0.1.0)
      nokogiri

PATH
  remote: vendor/gems/backbone-on-rails
  specs:
    backbone-on-rails (1.2.0.0)

GEM
  remote: https://rubygems.org/
  specs:
    concurrent-ruby (1.1.10)
    nokogiri (1.13.10-x86_64-linux)
      racc (~> 1.4)
    nokogiri (1.13.10-arm64-darwin)
      racc (~> 1.4)
    racc (1.6.1)
    sqlite3 (1.5.4-x86_64-linux-musl)

PLATFORMS
  arm64-darwin
  x86_64-linux

DEPENDENCIES
  activesupport!
  myapp!
  nokogiri (~> 1.13)

BUNDLED WITH
   2.3.26
"""


def test_gemfile_lock_sections_and_platforms(tmp_path):
    components = scan(tmp_path, {"Gemfile.lock": GEMFILE_LOCK})
    assert {(c.name, c.version) for c in components} == {
        ("activesupport", "7.1.0.alpha"),
        ("backbone-on-rails", "1.2.0.0"),  # vendored; "myapp" is the project itself
        ("concurrent-ruby", "1.1.10"),
        ("nokogiri", "1.13.10"),
        ("racc", "1.6.1"),
        ("sqlite3", "1.5.4"),
    }


def test_gemspecs_outside_specifications_are_sources_not_installs(tmp_path):
    source = 'Gem::Specification.new do |s|\n  s.name = "mine"\n  s.version = Mine::VERSION\nend\n'
    components = scan(
        tmp_path,
        {
            "src/mine.gemspec": source,
            "gems/specifications/literal-1.0.gemspec": source.replace("Mine::VERSION", "'1.0'"),
            "gems/specifications/computed-1.0.gemspec": source,
        },
    )
    assert found(components) == {
        ("RubyGems", "mine", "1.0", "gems/specifications/literal-1.0.gemspec")
    }


@pytest.mark.parametrize(
    "name, body",
    [
        ("Gemfile.lock", b"GEM\n  specs:\n    \xff\xfe (\x00)\n"),
        ("Gemfile.lock", "GEM\n    rack (not-a-version)\n"),
        ("specifications/x-1.0.gemspec", b"\x00" * 64),
    ],
)
def test_malformed_ruby_metadata_is_skipped(tmp_path, name, body):
    ok = "GEM\n  specs:\n    rack (2.2.3)\n"
    components = scan(tmp_path, {f"app/{name}": body, "ok/Gemfile.lock": ok})
    assert found(components) == {("RubyGems", "rack", "2.2.3", "ok/Gemfile.lock")}


# -- through the whole scan --------------------------------------------------------------

OSV = Path(__file__).parents[1] / "data" / "corpus" / "osv"


def test_ruby_sources_through_the_scan(tmp_path, clamd):
    from scanner.model import Settings
    from scanner.osv import OsvDatabase
    from scanner.pipeline import scan_package

    source = tmp_path / "source" / "rubyapp-2.0"
    shutil.copytree(LOCKFILES / "bundler", source / "app")
    shutil.copytree(LOCKFILES / "installed", source / "usr" / "local" / "bundle")
    package = tmp_path / "rubyapp_2_0.tar.gz"
    with tarfile.open(package, "w:gz") as tar:
        tar.add(source, "rubyapp-2.0")
    settings = Settings(osv_paths=(OSV,), clamd=clamd.address, scratch_dir=tmp_path)
    result = scan_package(package, settings, osv=OsvDatabase.load([OSV]))

    base = "rubyapp_2_0.tar.gz!/rubyapp-2.0"
    assert {(c.name, c.version, c.location) for c in result.components} == {
        (n, v, f"{base}/app/Gemfile.lock") for n, v in LOCKED
    } | {("shop_helpers", "0.3.1",
          f"{base}/usr/local/bundle/specifications/shop_helpers-0.3.1.gemspec")}
    # the corpus holds no RubyGems advisory: nothing to block
    assert result.verdict == "approved"
