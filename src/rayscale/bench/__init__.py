"""Benchmarks: ``rayscale bench planner`` runs the rayscale planner against Ray's own schedulers.

- :mod:`rayscale.bench.scenarios`: seeded synthetic planner inputs (S1..S5).
- :mod:`rayscale.bench.ray_anchors`: the same inputs through Ray 2.60's v1 and v2 schedulers.
- :mod:`rayscale.bench.planner_bench`: timing, an independent fit checker, and the report.
"""
