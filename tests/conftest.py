"""Shared test configuration: each tier's directory marks its tests (unit, ray, k8s)."""
