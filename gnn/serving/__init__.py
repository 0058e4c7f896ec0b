"""Serving: batch scoring of a snapshot, inductive scoring of one account or unseen event, and the reasons behind a score."""
