"""Actor pools from declared resources: the same declarations on a laptop, a CPU and a GPU cluster
(where the segment stages run as one fused pool unless a GPU generator needs feeding)."""

from __future__ import annotations

import pytest

from musedub.pipeline.core.pools import RESERVED_CPUS, Pool, size_pools, threads_oversubscribe
from musedub.pipeline.core.stage import Resources
from musedub.pipeline.dub.batch import BatchSettings


def segment_pools(cluster: dict[str, float], device: str = "auto", cpu_pool: int = 0, gpu_pool: int = 0) -> dict:
    settings = BatchSettings(weights="weights", device=device, cpu_pool=cpu_pool, gpu_pool=gpu_pool)
    return size_pools(settings.layout(cluster).resources(), cluster)


def cpus_taken(pools: dict) -> float:
    return sum(p.size * p.cpus for p in pools.values())


FUSED = "cpu"  # tracking and whole segments in one pool
SPLIT = {"cpu", "gpu"}  # tracking, crop+prompts and blend+encode around the generator


@pytest.mark.parametrize("cpus", [1.0, 2.0, 4.0, 16.0, 96.0])
def test_pools_always_leave_half_a_cpu_for_plan_finish_and_ray_datas_tasks(cpus: float) -> None:
    pools = segment_pools({"CPU": cpus})
    assert set(pools) == {FUSED}
    assert cpus_taken(pools) <= max(cpus - RESERVED_CPUS, 0.05) + 1e-9
    assert pools[FUSED].size >= 1 and pools[FUSED].gpus == 0


def test_a_laptop_runs_one_fused_actor_in_the_room_it_has() -> None:
    assert segment_pools({"CPU": 2.0})[FUSED] == Pool(min_size=1, size=1, cpus=1.0)


def test_a_cpu_cluster_fills_its_cores() -> None:
    pools = segment_pools({"CPU": 16.0})
    assert pools[FUSED].size == 15 and pools[FUSED].cpus == 1.0


def test_threads_wait_asleep_only_where_the_actors_threads_outnumber_the_cores() -> None:
    """Two torch threads: the laptop's one fused actor spins; 15 actors on 16 cores, or split pools
    on 2, must sleep at barriers."""
    for cluster, pools, oversubscribed in (
        ({"CPU": 2.0}, segment_pools({"CPU": 2.0}), False),
        ({"CPU": 16.0}, segment_pools({"CPU": 16.0}), True),
        (
            {"CPU": 2.0},
            size_pools(BatchSettings(weights="w", pools="split").layout({"CPU": 2.0}).resources(), {"CPU": 2.0}),
            True,
        ),
    ):
        assert threads_oversubscribe(list(pools.values()), 2, cluster) is oversubscribed
    assert not threads_oversubscribe(list(segment_pools({"CPU": 16.0}).values()), 1, {"CPU": 16.0})


def test_split_pools_share_the_cores_round_robin() -> None:
    stages = {name: Resources() for name in ("a", "b", "c")}
    pools = size_pools(stages, {"CPU": 16.0})
    assert cpus_taken(pools) == 15.0 and {p.size for p in pools.values()} == {5}
    assert {p.cpus for p in size_pools({**stages, "d": Resources()}, {"CPU": 2.0}).values()} == {0.375}


def test_gpus_present_get_one_generator_actor_each_and_cpus_the_rest() -> None:
    pools = segment_pools({"CPU": 64.0, "GPU": 4.0})
    assert set(pools) == SPLIT and pools["gpu"].size == 4 and pools["gpu"].gpus == 1.0
    assert pools["cpu"].size == 59 and cpus_taken(pools) <= 63.5
    assert segment_pools({"CPU": 64.0, "GPU": 4.0}, device="cpu")[FUSED].gpus == 0.0


def test_cuda_asks_for_gpu_actors_before_an_autoscaler_has_added_the_node() -> None:
    pools = segment_pools({"CPU": 32.0}, device="cuda", gpu_pool=2)
    assert (pools["gpu"].min_size, pools["gpu"].size, pools["gpu"].gpus) == (2, 2, 1.0)


def test_explicit_pool_sizes_win() -> None:
    assert segment_pools({"CPU": 64.0}, cpu_pool=3)[FUSED].size == 3
    pools = segment_pools({"CPU": 64.0, "GPU": 1.0}, cpu_pool=3)
    assert pools["cpu"].size == 3 and pools["gpu"].size == 1


def test_declared_limits_and_item_counts_bound_a_pool() -> None:
    stages = {"a": Resources(cpus=1.0, max_actors=2), "b": Resources(cpus=2.0, memory_gb=1.5)}
    pools = size_pools(stages, {"CPU": 32.0})
    assert pools["a"].size == 2 and pools["b"].size == 14 and pools["b"].memory_bytes == int(1.5 * 2**30)
    assert size_pools(stages, {"CPU": 32.0}, items=3)["b"].size == 3  # more actors than items only idle
