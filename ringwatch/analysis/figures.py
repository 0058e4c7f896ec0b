"""Figures for the notebooks: a figure outside pyplot's global state, where it is saved, the colours."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from graph.types import NodeType, Tier
from ringwatch.settings import Settings

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["FIGURES_DIR", "TIER_COLOURS", "TYPE_COLOURS", "new_figure", "figures_dir", "save_figure"]

#: Where notebooks save their figures, under ``Settings.reports_dir``.
FIGURES_DIR = "notebooks"
#: Tier colours, the same as the Neo4j Browser style (``neo4j/ringwatch.grass``).
TIER_COLOURS: dict[Tier | None, str] = {
    Tier.LOW: "#4caf50",
    Tier.MEDIUM: "#ffb300",
    Tier.HIGH: "#e53935",
    None: "#b0bec5",  # not scored
}
#: Colours of devices, IPs and merchants in the figures.
TYPE_COLOURS = {NodeType.DEVICE: "#8e6bbf", NodeType.IP: "#64b5f6", NodeType.MERCHANT: "#d7b98e"}


def new_figure(*args: object, **kwargs: object) -> Figure:
    """A figure that is not registered with pyplot (no global state, no display side effects)."""
    from matplotlib.figure import Figure

    return Figure(*args, **kwargs)  # type: ignore[arg-type]


def figures_dir(settings: Settings) -> Path:
    """``HOME/reports/notebooks``, created if missing."""
    path = settings.reports_dir / FIGURES_DIR
    path.mkdir(parents=True, exist_ok=True)
    return path


def save_figure(fig: Figure, folder: Path, name: str) -> Path:
    """Write ``fig`` as ``folder/name`` (PNG, 110 dpi, tight box) and return the path."""
    path = Path(folder) / name
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight", facecolor="white")
    return path
