"""Local process runtime: run Ray nodes (and other helpers) as local processes.

- :mod:`rayscale.processes` (shared by every runtime): spawn a command in its own process
  group with a log file, stop it (SIGTERM, then SIGKILL to the whole group), find leftovers,
  reserve fixed ports.
- :mod:`rayscale.local.raynodes`: start a real Ray head and Ray workers on this machine
  (``ray start`` through :mod:`rayscale.local.raystart`, then a small keeper), each cluster
  with its own directory and auth token, every port OS-assigned where Ray allows it.

The embedded runtime (``rayscale up``) and the Ray test tier (``tests/ray``) build on these.
"""
