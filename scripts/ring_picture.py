"""Regenerate docs/img/ring-subgraph.png: a ring drawn as notebook 3 draws it (``ringwatch.analysis.rings``).

Runs the main job on a synthetic dataset in a temporary folder (embedded store), scores it, and
draws the highest-scoring ring of moderate size (at most ``--max-size`` members, so the picture
stays readable; the top ring when none is that small).

    .venv/bin/python scripts/ring_picture.py [--users 2000] [--seed 7] [--out docs/img/ring-subgraph.png]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from gnn.training.train import TrainConfig
from ringwatch import pipeline
from ringwatch.analysis.data import load_or_generate
from ringwatch.analysis.figures import save_figure
from ringwatch.analysis.rings import draw_ring, ring_subgraph
from ringwatch.settings import Settings

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--max-size", type=int, default=14)
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "img" / "ring-subgraph.png")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ring-picture-") as tmp:
        settings = Settings(home=Path(tmp))
        load_or_generate(settings, args.users, args.seed)
        pipeline.step_train(settings, TrainConfig(seed=args.seed, epochs=30, patience=8))
        scored = pipeline.step_score(settings)
        with pipeline.store_for(settings) as store:
            last = store.last_scores()
        if not scored.rings:
            raise SystemExit("no ring detected; try more --users")
        ring = next((r for r in scored.rings if r.size <= args.max_size), scored.rings[0])
        fig = draw_ring(ring_subgraph(scored.snapshot, ring, last), ring)
        path = save_figure(fig, args.out.parent, args.out.name)
    print(f"{ring.ring_id}: {ring.size} members -> {path}")


if __name__ == "__main__":
    main()
