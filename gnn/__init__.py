"""Features, the heterogeneous GraphSAGE model, training, calibration to tiers, scoring."""
