"""Serving: batch scoring, inductive scoring of one account or unseen event, reasons."""
