"""Readers (CSV, Parquet, JSON lines), column mapping, validation, quarantine and loading."""
