"""Where ringwatch keeps its files and which store it talks to, read once from CLI and env."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from graph.errors import ConfigError

DEFAULT_HOME = Path("ringwatch-data")


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything ringwatch writes lives under ``home`` (``--home`` > ``RINGWATCH_HOME`` >
    ``./ringwatch-data``). ``neo4j_uri`` set means the Neo4j store is used instead of SQLite."""

    home: Path
    neo4j_uri: str | None = None
    neo4j_user: str = "neo4j"
    neo4j_password: str | None = None

    @property
    def store_path(self) -> Path:
        return self.home / "store.sqlite"

    @property
    def data_dir(self) -> Path:
        return self.home / "data"

    @property
    def models_dir(self) -> Path:
        return self.home / "models"

    @property
    def reports_dir(self) -> Path:
        return self.home / "reports"

    @property
    def quarantine_dir(self) -> Path:
        return self.home / "quarantine"

    @classmethod
    def load(cls, home: str | Path | None = None) -> Settings:
        """Resolve settings from an explicit ``home`` and the environment. Creates nothing."""
        chosen = Path(home) if home else Path(os.environ.get("RINGWATCH_HOME") or DEFAULT_HOME)
        return cls(
            home=chosen.expanduser().resolve(),
            neo4j_uri=os.environ.get("NEO4J_URI") or None,
            neo4j_user=os.environ.get("NEO4J_USER", "neo4j"),
            neo4j_password=os.environ.get("NEO4J_PASSWORD") or None,
        )

    def ensure_dirs(self) -> None:
        """Create ``home`` and its folders.

        Raises:
            ConfigError: one cannot be created (names it and says why).
        """
        for d in (self.home, self.data_dir, self.models_dir, self.reports_dir, self.quarantine_dir):
            try:
                d.mkdir(parents=True, exist_ok=True)
            except OSError as e:
                raise ConfigError(
                    f"cannot create {d}: {e.strerror or e}; choose a writable --home (or RINGWATCH_HOME)"
                ) from e
