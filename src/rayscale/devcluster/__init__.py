"""A one-machine Kubernetes dev cluster: real kube-apiserver, etcd and controller-manager, plus
a process kubelet that runs pods as local process groups (no container runtime needed).

Today this package holds the process kubelet (:mod:`.kubelet`) and what it shares with
``rayscale exec --kubernetes`` (:mod:`.execrecord`); the ``rayscale dev-cluster`` command that
starts the whole stack comes later.
"""
