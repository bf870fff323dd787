"""The one-machine Kubernetes: ``rayscale dev-cluster`` and its process kubelet.

Real kube-apiserver, etcd and kube-controller-manager (built from their Go modules), the
rayscale operator, and a kubelet that runs each pod's containers as local processes (there is
no container runtime here). Used by ``rayscale dev-cluster up|down|env`` and by the
Kubernetes test tier.
"""
