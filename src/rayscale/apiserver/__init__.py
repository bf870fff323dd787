"""The REST API server (KubeRay v1 wire shapes): compute templates, clusters and jobs.

- :mod:`.models`: the pydantic wire models; :mod:`.mapping`: API objects -> RayCluster CR;
- :mod:`.errors`: ``{"code", "message", "details"}`` errors; :mod:`.app`: the FastAPI app;
- :mod:`.backends`: the interface and the local backend (SQLite :mod:`.store` + local runtime).

Kept import-light: :mod:`.jobrunner` runs under ``python -m`` next to every job's driver.
"""
