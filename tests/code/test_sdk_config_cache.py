"""The content-keyed cache of parsed clearml configuration files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from asteroid import sdk_config_cache

PLAIN = """
# Options include comments that mention the word include
api { host: "http://example:8008", retries: 3 }
sdk.storage.cache.size.min_free_bytes: 10GB
"""


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("CLEARML_CACHE_DIR", str(tmp_path / "cache"))
    sdk_config_cache.install()
    return sdk_config_cache.cache_dir()


def parse(path: Path) -> Any:
    """A pyhocon ConfigTree, through the (possibly wrapped) SDK parser."""
    from clearml.utilities.pyhocon.config_parser import ConfigFactory

    return ConfigFactory.parse_file(str(path))


def test_second_parse_comes_from_the_cache_and_equals_the_first(tmp_path: Path, cache: Path) -> None:
    conf = tmp_path / "plain.conf"
    conf.write_text(PLAIN)
    first = parse(conf)
    assert len(list(cache.glob("*.pickle"))) == 1
    second = parse(conf)
    assert second == first
    assert second.get("api.retries") == 3 and second.get("api.host") == "http://example:8008"


def test_changed_content_is_parsed_again(tmp_path: Path, cache: Path) -> None:
    conf = tmp_path / "plain.conf"
    conf.write_text(PLAIN)
    parse(conf)
    conf.write_text(PLAIN.replace("retries: 3", "retries: 4"))
    assert parse(conf).get("api.retries") == 4


def test_substitutions_and_includes_are_never_cached(tmp_path: Path, cache: Path) -> None:
    conf = tmp_path / "subst.conf"
    conf.write_text('a: 1\nb: ${a}\ninclude "missing.conf"\n')
    assert not sdk_config_cache.cacheable(conf.read_text())
    assert sdk_config_cache.cacheable(PLAIN)
    assert parse(conf).get("b") == 1
    assert not cache.exists() or not list(cache.glob("*.pickle"))


def test_install_is_idempotent() -> None:
    from clearml.utilities.pyhocon.config_parser import ConfigFactory

    sdk_config_cache.install()
    wrapped = ConfigFactory.parse_file
    sdk_config_cache.install()
    assert ConfigFactory.parse_file == wrapped
