"""Synthetic data with planted fraud rings (the demo's generator and a hub-shaped one), and
ring recovery: detected rings measured against the planted ones."""
