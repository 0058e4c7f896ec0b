"""Training and what ships: targets and split, GraphSAGE, candidates, selection, promotion, tiers."""
