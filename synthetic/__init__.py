"""Synthetic data with planted fraud rings: the demo's generator and a hub-shaped one."""
