#!/usr/bin/env bash
# Build kube-apiserver from the k8s.io/kubernetes Go module, cached at
# $RAYSCALE_CACHE/kube-apiserver/<version>/kube-apiserver: see build-kube-component.sh, which
# builds kube-controller-manager and kubectl the same way from the same module.
exec "$(dirname "$0")/build-kube-component.sh" kube-apiserver "$@"
