"""The operator's only door to the cluster: the Kubernetes API client, pod probing and the peering rule."""
