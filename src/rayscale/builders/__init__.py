"""Pure builders: RayCluster -> Kubernetes manifests (pods, service)."""
