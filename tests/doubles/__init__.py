"""The one family of test doubles, shared by every tier that runs the orchestrator without helm
or a cluster (unit, bench) and by the tiers that play Harvester (cluster):

* `tests.doubles.helm.FakeHelm` and `tests.doubles.kube.FakeKube` implement the seams
  `orchestrator.seams.HelmSeam` and `KubeSeam`; mypy checks them against the Protocols wherever
  they are passed to `SessionService`, so a double cannot drift from what the service calls;
* `tests.doubles.pods`: session pods (a builder, and the pods recorded from a real cluster);
* `tests.doubles.harvester`: Harvester's WorkSpec and JobSpec, the example job, `make_service`.
"""

from typing import TYPE_CHECKING

from tests.doubles.harvester import (
    HELM_TIMEOUT,
    HELM_UNAVAILABLE,
    NOW,
    JobSpec,
    WorkSpec,
    example_params,
    make_service,
    worker,
)
from tests.doubles.helm import FakeHelm
from tests.doubles.kube import SERVER_NOW, FakeKube, stamp
from tests.doubles.pods import (
    DATA,
    EXAMPLE_JOB,
    FIXTURE_NAMESPACE,
    FIXTURE_PANDAID,
    PODS,
    fixture_pods,
    pod,
    session_pods,
    with_pilot_exit,
)

__all__ = [
    "DATA",
    "EXAMPLE_JOB",
    "FIXTURE_NAMESPACE",
    "FIXTURE_PANDAID",
    "HELM_TIMEOUT",
    "HELM_UNAVAILABLE",
    "NOW",
    "PODS",
    "SERVER_NOW",
    "FakeHelm",
    "FakeKube",
    "JobSpec",
    "WorkSpec",
    "example_params",
    "fixture_pods",
    "make_service",
    "pod",
    "session_pods",
    "stamp",
    "with_pilot_exit",
    "worker",
]

if TYPE_CHECKING:
    from orchestrator.seams import HelmSeam, KubeSeam

    # mypy proves the doubles implement the seams they stand in for (nothing runs here)
    def _doubles_are_seams(helm: FakeHelm, kube: FakeKube) -> tuple[HelmSeam, KubeSeam]:
        return helm, kube
