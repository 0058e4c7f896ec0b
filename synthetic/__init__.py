"""Synthetic data with planted fraud rings, its planted truth, and ring recovery: detected rings
measured against the planted ones."""
