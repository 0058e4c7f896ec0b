from __future__ import annotations

import pytest

from tests.ringwatch.analysis.world import World, build_world


@pytest.fixture(scope="package")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    return build_world(tmp_path_factory.mktemp("analysis-home"))
