"""Builders of offline, real datasets (no network)."""
