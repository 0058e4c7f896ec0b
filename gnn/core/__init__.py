"""The model and its features: feature blocks, known-fraud and tree features, GraphSAGE, the tree ensembles, the unsupervised anomaly score, the torch device."""
