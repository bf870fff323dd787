"""rayscale: KubeRay-compatible autoscaling for Ray."""

__version__ = "0.1.0"
