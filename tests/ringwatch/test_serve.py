"""``ringwatch.serve``: the API gets its store, models and data directory from the command line's
settings, and the rest of its configuration from the environment."""

from __future__ import annotations

from pathlib import Path

import pytest

from graph.errors import ConfigError
from ringwatch.serve import api_config
from ringwatch.settings import Settings


def test_the_api_is_configured_from_the_settings(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home")
    config = api_config(settings, env={"RINGWATCH_NO_AUTH": "1"})
    assert config.models_dir == settings.models_dir
    assert config.journal_dir == settings.home / "journal"
    assert config.keys is None
    with config.store_factory() as store:
        assert store.backend == "sqlite"
    assert settings.store_path.is_file()


def test_serving_without_keys_must_be_asked_for(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no API keys"):
        api_config(Settings(home=tmp_path / "home"), env={})
