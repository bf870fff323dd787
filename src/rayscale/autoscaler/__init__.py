"""The autoscaler: one observe -> plan -> act loop, with pluggable backends."""
