"""The model and its features: feature blocks, tree columns, GraphSAGE, tree ensembles, anomaly score."""
