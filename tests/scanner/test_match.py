"""Names and version ranges per ecosystem (scanner.match)."""

import pytest

from scanner.match import Affected, affected, ecosystem_base, in_range, normalise_name


def entry(*ranges, versions=None):
    data = {"package": {"ecosystem": "X", "name": "x"}, "ranges": list(ranges)}
    if versions is not None:
        data["versions"] = versions
    return data


def rng(kind="ECOSYSTEM", **events):
    return {"type": kind, "events": [{k: v} for k, v in events.items()]}


@pytest.mark.parametrize(
    "name, expected",
    [
        ("Jinja2", "jinja2"),
        ("zope.interface", "zope-interface"),
        ("Foo__Bar-.baz", "foo-bar-baz"),
        ("PyYAML", "pyyaml"),
    ],
)
def test_pypi_names_are_pep503_normalised(name, expected):
    assert normalise_name("PyPI", name) == expected


def test_other_names():
    assert normalise_name("npm", "@Babel/Core") == "@babel/core"
    assert normalise_name("Maven", "org.apache.logging.log4j:log4j-core") == (
        "org.apache.logging.log4j:log4j-core"
    )
    assert normalise_name("Go", "github.com/Sirupsen/logrus") == "github.com/Sirupsen/logrus"
    assert normalise_name("Debian:12", "OpenSSL") == "openssl"


def test_ecosystem_prefix():
    assert ecosystem_base("Debian:12") == "Debian"
    assert ecosystem_base("Alpine:v3.18") == "Alpine"
    assert ecosystem_base("pypi") == "PyPI"
    assert ecosystem_base("npm") == "npm"


@pytest.mark.parametrize(
    "version, expected",
    [("0.9", Affected.NO), ("1.0", Affected.YES), ("1.9.9", Affected.YES), ("2.0", Affected.NO)],
)
def test_introduced_fixed(version, expected):
    assert (
        in_range("PyPI", version, [{"introduced": "1.0"}, {"fixed": "2.0"}], semver=False)
        is expected
    )


@pytest.mark.parametrize(
    "version, expected",
    [("1.4.0", Affected.YES), ("1.4.1", Affected.NO), ("0.0.1", Affected.YES)],
)
def test_last_affected_is_inclusive(version, expected):
    events = [{"introduced": "0"}, {"last_affected": "1.4.0"}]
    assert in_range("npm", version, events, semver=True) is expected


@pytest.mark.parametrize(
    "version, expected",
    [("1.5.0", Affected.YES), ("2.5.0", Affected.NO), ("3.0.0", Affected.NO)],
)
def test_limit_bounds_the_range(version, expected):
    events = [{"introduced": "1.0.0"}, {"limit": "2.0.0"}]
    assert in_range("crates.io", version, events, semver=True) is expected


def test_several_intervals_in_one_range_out_of_order():
    events = [{"introduced": "3.0"}, {"fixed": "2.0"}, {"introduced": "1.0"}, {"fixed": "4.0"}]
    assert in_range("Maven", "1.5", events, semver=False) is Affected.YES
    assert in_range("Maven", "2.5", events, semver=False) is Affected.NO
    assert in_range("Maven", "3.5", events, semver=False) is Affected.YES
    assert in_range("Maven", "4.0", events, semver=False) is Affected.NO


def test_pypi_ordering_is_pep440_not_lexical():
    events = [{"introduced": "0"}, {"fixed": "2.10"}]
    assert in_range("PyPI", "2.9", events, semver=False) is Affected.YES
    assert in_range("PyPI", "2.10rc1", events, semver=False) is Affected.YES
    assert in_range("PyPI", "2.10.0", events, semver=False) is Affected.NO


def test_maven_ordering():
    events = [{"introduced": "2.0-beta9"}, {"fixed": "2.15.0"}]
    assert in_range("Maven", "2.14.1", events, semver=False) is Affected.YES
    assert in_range("Maven", "2.15.0", events, semver=False) is Affected.NO


def test_go_versions_with_v_prefix_against_semver_ranges():
    events = [{"introduced": "0"}, {"fixed": "1.8.3"}]
    assert in_range("Go", "v1.8.2", events, semver=True) is Affected.YES
    assert in_range("Go", "v1.8.3", events, semver=True) is Affected.NO
    assert in_range("Go", "go1.8.2", events, semver=True) is Affected.YES


def test_debian_and_alpine_orderings():
    events = [{"introduced": "0"}, {"fixed": "1.2.1-2.2+wheezy3"}]
    assert in_range("Debian:7", "1.2.1-2.2+wheezy2", events, semver=False) is Affected.YES
    assert in_range("Debian", "1:1.0-1", events, semver=False) is Affected.NO  # epoch wins
    alpine = [{"introduced": "0"}, {"fixed": "3.1.4-r1"}]
    assert in_range("Alpine:v3.19", "3.1.4-r0", alpine, semver=False) is Affected.YES
    assert in_range("Alpine", "3.1.4-r1", alpine, semver=False) is Affected.NO


def test_versions_list_and_ranges_either_match():
    e = entry(rng(introduced="2.0", fixed="2.1"), versions=["1.0", "1.1"])
    assert affected("PyPI", "1.1", e) is Affected.YES
    assert affected("PyPI", "1.1.0", e) is Affected.YES  # PEP 440 equality
    assert affected("PyPI", "2.0.5", e) is Affected.YES
    assert affected("PyPI", "1.2", e) is Affected.NO


def test_git_ranges_are_ignored():
    e = entry({"type": "GIT", "repo": "https://x", "events": [{"introduced": "0"}]})
    assert affected("PyPI", "1.0", e) is Affected.NO


def test_unparseable_version_is_undecided_not_clean_nor_affected():
    e = entry(rng(introduced="0", fixed="1.2.1-1"))
    assert affected("Debian", "not a version!", e) is Affected.UNDECIDED
    # an explicit list still matches by exact string
    assert affected("Debian", "weird~", entry(versions=["weird~"])) is Affected.YES


def test_unparseable_event_is_undecided():
    assert in_range("PyPI", "1.0", [{"introduced": "x y z"}], semver=False) is Affected.UNDECIDED
