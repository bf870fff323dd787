"""Benchmarks: ``rayscale bench planner`` runs the rayscale planner against Ray's own schedulers.

- :mod:`rayscale.bench.scenarios`: seeded synthetic planner inputs (S1..S6).
- :mod:`rayscale.bench.ray_anchors`: the same inputs through Ray 2.60's v1 and v2 schedulers.
- :mod:`rayscale.bench.checker`: the one independent checker (plans and launch sets), shared
  with the property tests.
- :mod:`rayscale.bench.timing`: each scheduler in a fresh process, clean heap, per-call timeout.
- :mod:`rayscale.bench.report`: the table.
- :mod:`rayscale.bench.planner_bench`: the run (rows, comparisons, ``main``).
"""
