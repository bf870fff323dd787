"""lightkube resource classes of the ray.io/v1 custom resources."""

from __future__ import annotations

from lightkube.generic_resource import create_namespaced_resource

from rayscale.builders.crds import GROUP, VERSION

RayCluster = create_namespaced_resource(GROUP, VERSION, "RayCluster", "rayclusters")
RayJob = create_namespaced_resource(GROUP, VERSION, "RayJob", "rayjobs")
