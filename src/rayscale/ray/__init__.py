"""Adapters to a running Ray cluster: GCS demand and node state, drain, status."""
