"""Join a Ray cluster: an existing one (`--address`, or RAY_ADDRESS under `ray job submit`) or an
embedded local one on this machine.

Whether OpenMP threads sleep or spin while they wait is the pools' choice, not the cluster's: the
batch's stream pool asks for OMP_WAIT_POLICY=PASSIVE where its actors' threads outnumber the CPUs
(`core.pools.threads_oversubscribe`). Real clusters, which run many actors a node, set it on their
nodes (ray_cluster.yaml, infra/kuberay/).
"""

from __future__ import annotations

import logging
import os

import ray

log = logging.getLogger(__name__)


def connect(address: str | None = None, num_cpus: int | None = None, log_to_driver: bool = False) -> dict[str, float]:
    """Start or join Ray once per process; returns the cluster's resources (CPU, GPU, ...).

    Pipelines print their own progress; training shows its workers' step logs (`log_to_driver`).
    """
    if not ray.is_initialized():
        target = address or os.environ.get("RAY_ADDRESS")
        if target:
            ray.init(address=target, log_to_driver=log_to_driver)
        else:
            ray.init(num_cpus=num_cpus, include_dashboard=False, log_to_driver=log_to_driver)
    resources = ray.cluster_resources()
    log.info("ray cluster: %s", {k: v for k, v in resources.items() if k in ("CPU", "GPU", "memory")})
    return resources
