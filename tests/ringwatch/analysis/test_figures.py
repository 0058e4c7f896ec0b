"""Every notebook figure has a title and labelled axes, and saves as a PNG."""

from __future__ import annotations

from pathlib import Path

from ringwatch.analysis.figures import save_figure
from ringwatch.analysis.graph_shape import activity_by_day, node_degrees, plot_activity, plot_degree_distributions
from ringwatch.analysis.rings import draw_ring, plot_ring_timeline, ring_subgraph, ring_timeline
from ringwatch.analysis.thresholds import choose_thresholds, operating_points, plot_tradeoff
from tests.ringwatch.analysis.world import World, planted_ring, random_scores


def test_figures_have_titles_and_labelled_axes(world: World, tmp_path: Path) -> None:
    ring, _ = planted_ring(world)
    s, y = random_scores()
    choice = choose_thresholds(s, y, target_precision=0.8, review_rate=0.05)
    figures = {
        "degrees": plot_degree_distributions(node_degrees(world.snapshot)),
        "activity": plot_activity(activity_by_day(world.snapshot)),
        "tradeoff": plot_tradeoff(operating_points(s, y), choice),
        "timeline": plot_ring_timeline(ring_timeline(world.snapshot, ring), ring),
    }
    for name, fig in figures.items():
        for ax in fig.axes:
            assert ax.get_title() and ax.get_xlabel() and ax.get_ylabel(), name
        path = save_figure(fig, tmp_path, f"{name}.png")
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    ring_fig = draw_ring(ring_subgraph(world.snapshot, ring, world.scores), ring)
    assert ring.ring_id in ring_fig.axes[0].get_title()
    assert save_figure(ring_fig, tmp_path, "ring.png").stat().st_size > 10_000
