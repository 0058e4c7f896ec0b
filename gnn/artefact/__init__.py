"""The model artefact (one file a trained model ships in) and its lineage (selection, promotion)."""
