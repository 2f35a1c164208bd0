"""Actor pools from declared `Resources` and the cluster's resources; no Ray here, so it is tested
for a laptop, a CPU cluster and a GPU cluster without one.

Half a CPU always stays free for Ray Data's own read and split tasks (a pool that takes every CPU
starves them and the dataset deadlocks, seen on 2 cores) and for the batch's plan, stitch and
style reference tasks, which run while its pools hold the rest.
"""

from __future__ import annotations

from dataclasses import dataclass

from musedub.pipeline.core.stage import Resources

RESERVED_CPUS = 0.5
MIN_CPU_SHARE = 0.05


@dataclass(frozen=True)
class Pool:
    """How many actors of a stage run at once, and what each holds (Ray's per-actor request)."""

    min_size: int
    size: int
    cpus: float
    gpus: float = 0.0
    memory_bytes: int = 0


def size_pools(stages: dict[str, Resources], cluster: dict[str, float], items: int | None = None) -> dict[str, Pool]:
    """Pools for stages that run at the same time, sharing `cluster` ({"CPU": 16, "GPU": 2, ...}).

    GPU stages get one actor per GPU share present (at least `min_actors`). CPU room left after
    them is handed out one actor at a time, round robin in declaration order, up to each stage's
    `max_actors` and to `items` (more actors than work items only idle). When even one actor
    each does not fit, every actor's CPU share is scaled down alike.
    """
    room = max(cluster.get("CPU", 1.0) - RESERVED_CPUS, MIN_CPU_SHARE)
    gpus = cluster.get("GPU", 0.0)
    cap = {name: min(r.max_actors or 10**6, items or 10**6) for name, r in stages.items()}
    actors = {name: min(max(r.min_actors, 1), cap[name]) for name, r in stages.items()}
    for name, r in stages.items():
        if r.gpus > 0:
            actors[name] = max(actors[name], min(cap[name], int(gpus // r.gpus)))
    demand = sum(actors[n] * r.cpus for n, r in stages.items())
    growing = [n for n, r in stages.items() if r.gpus == 0]
    while growing:
        for name in list(growing):
            need = stages[name].cpus
            if need <= 0 or actors[name] >= cap[name] or demand + need > room:
                growing.remove(name)
                continue
            actors[name] += 1
            demand += need
    scale = min(1.0, room / demand) if demand else 1.0
    return {
        name: Pool(
            min_size=min(max(r.min_actors, 1), actors[name]),
            size=actors[name],
            cpus=round(max(MIN_CPU_SHARE, r.cpus * scale), 3),
            gpus=r.gpus,
            memory_bytes=int(r.memory_gb * 2**30),
        )
        for name, r in stages.items()
    }


def threads_oversubscribe(pools: list[Pool], threads: int, cluster: dict[str, float]) -> bool:
    """Whether the pools' actors, `threads` compute threads each, outnumber the cluster's CPUs.

    Then an OpenMP thread that waits at a barrier must sleep (OMP_WAIT_POLICY=PASSIVE), not spin on
    a core another actor needs: the tiny generator beside an x264 encode in another pool went from
    5.0 to 6.8 frames/s. Where every thread has a core (one fused actor on a laptop), a short spin
    is what keeps a parallel op fast: PASSIVE there was most of the 2-core batch's overhead against
    in process, +26-28% -> +7-19% without it (docs/PERFORMANCE.md, "Threads that wait").
    """
    return threads * sum(p.size for p in pools) > cluster.get("CPU", 1.0)
