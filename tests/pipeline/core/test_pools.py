"""Actor pools sized from the cluster: CPU left for Ray Data's tasks, GPUs used when asked for."""

from __future__ import annotations

import pytest
from musedub.pipeline.dub.batch import BatchSettings, pools
from musedub.pipeline.dub.options import DubOptions


def settings(device: str = "auto", cpu_pool: int = 0, gpu_pool: int = 0) -> BatchSettings:
    return BatchSettings("weights", DubOptions(), device, cpu_pool=cpu_pool, gpu_pool=gpu_pool)


def reserved_cpus(sized: dict) -> float:
    return sum(p.size * p.cpus for name, p in sized.items() if name != "track")  # track runs before the rest


@pytest.mark.parametrize("cpus", [1.0, 2.0, 4.0, 16.0, 96.0])
def test_cpu_pools_always_leave_half_a_cpu_for_ray_datas_own_tasks(cpus: float) -> None:
    sized = pools(settings(), {"CPU": cpus})
    assert reserved_cpus(sized) <= cpus - 0.5 + 1e-9
    assert sized["track"].size * sized["track"].cpus <= max(cpus - 0.5, 0.05) + 1e-9  # tracking runs alone
    assert sized["generate"].gpus == 0


def test_gpus_present_get_one_generator_actor_each() -> None:
    sized = pools(settings(), {"CPU": 64.0, "GPU": 4.0})
    assert sized["generate"].size == 4 and sized["generate"].gpus == 1.0
    assert sized["crop"].size == 16 and sized["blend"].size == 16 and sized["track"].size == 63
    assert pools(settings("cpu"), {"CPU": 64.0, "GPU": 4.0})["generate"].gpus == 0.0


def test_cuda_asks_for_a_gpu_actor_before_an_autoscaler_has_added_the_node() -> None:
    sized = pools(settings("cuda", gpu_pool=2), {"CPU": 32.0})
    assert sized["generate"].size == 2 and sized["generate"].gpus == 1.0


def test_explicit_pool_sizes_win() -> None:
    sized = pools(settings(cpu_pool=3), {"CPU": 64.0})
    assert sized["crop"].size == sized["blend"].size == sized["track"].size == 3
