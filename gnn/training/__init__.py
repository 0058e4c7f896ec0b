"""Training and what ships: GraphSAGE training, candidate fitting, selection, promotion, tier calibration."""
