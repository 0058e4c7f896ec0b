"""The model and its yardsticks: features, GraphSAGE, tree ensembles, anomaly score, tier thresholds, metrics."""
