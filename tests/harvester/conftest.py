"""The harvester tier reuses the cluster tier's local Kubernetes (started once per session)."""

from tests.cluster.conftest import kube_cluster

__all__ = ["kube_cluster"]
