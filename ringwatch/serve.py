"""``ringwatch serve``: the API with this command line's settings.

``api_config`` gives the service the store (``pipeline.store_for``), the models folder and the
data directory of ``Settings``; the API reads nothing of ringwatch's settings itself. Every
uvicorn worker process builds its app with ``app_from_env`` (``uvicorn
ringwatch.serve:app_from_env --factory``), from the environment ``ringwatch serve`` set:
``RINGWATCH_HOME``, and ``NEO4J_URI``, ``NEO4J_USER``, ``NEO4J_PASSWORD`` to use Neo4j instead of
the embedded store, besides what ``api.server`` reads.
"""

from __future__ import annotations

from functools import partial

from fastapi import FastAPI

from api.app import ApiConfig
from api.server import config_from_env, worker_app
from ringwatch.pipeline import store_for
from ringwatch.settings import Settings

#: What uvicorn imports in each worker process.
APP_FACTORY = "ringwatch.serve:app_from_env"


def api_config(settings: Settings, env: dict[str, str] | None = None) -> ApiConfig:
    """The service configuration for ``settings`` (``env``: default ``os.environ``).

    Raises:
        ConfigError: a folder under home cannot be created, or the environment's service
            settings are wrong (``api.server.config_from_env``).
    """
    settings.ensure_dirs()
    return config_from_env(
        partial(store_for, settings), models_dir=settings.models_dir, data_dir=settings.home, env=env
    )


def app_from_env() -> FastAPI:
    """The app of one uvicorn worker process (``--factory``), with the settings of the environment."""
    return worker_app(api_config(Settings.load()))
