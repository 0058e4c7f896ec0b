"""Evaluation: the baselines, the few-labels table, the leakage audit, the report, the truth report."""
