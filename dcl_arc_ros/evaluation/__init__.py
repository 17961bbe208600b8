"""Evaluations of deployed models (numpy + the inference runtime; no torch)."""
