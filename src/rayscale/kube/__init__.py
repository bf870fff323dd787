"""The Kubernetes adapter: the ray.io resources, CRD installation, the autoscaler sidecar's
backend (a watch-fed cache plus one JSON patch per scale request) and the operator.

It talks to the API server with lightkube and never imports the other runtimes
(``rayscale.local``, ``rayscale.ray``).
"""
