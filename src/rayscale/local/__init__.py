"""Local process runtime: run Ray nodes (and other helpers) as local processes.

- :mod:`rayscale.local.processes`: spawn a command in its own process group with a log file,
  stop it (SIGTERM, then SIGKILL to the whole group), find leftovers, pick free ports.
- :mod:`rayscale.local.raynodes`: start a real Ray head and Ray workers with ``ray start
  --block`` on this machine, each cluster with its own directory, ports and auth token.

The embedded runtime (``rayscale up``) and the Ray test tier (``tests/ray``) build on these.
"""
