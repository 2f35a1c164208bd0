"""The KubeRay manifests must agree with themselves and with the `musedub batch` command line."""

from __future__ import annotations

import shlex
from pathlib import Path

import typer
import yaml

from jobs.cli import app

KUBERAY = Path(__file__).resolve().parents[2] / "infra" / "kuberay"


def load(name: str) -> dict:
    return yaml.safe_load((KUBERAY / name).read_text())


def test_raycluster_groups_advertise_what_their_pods_hold() -> None:
    cluster = load("raycluster.yaml")
    assert (cluster["apiVersion"], cluster["kind"]) == ("ray.io/v1", "RayCluster")
    import ray

    assert cluster["spec"]["rayVersion"] == ray.__version__
    groups = {g["groupName"]: g for g in cluster["spec"]["workerGroupSpecs"]}
    assert set(groups) == {"cpu", "gpu"}
    for group in groups.values():
        (container,) = group["template"]["spec"]["containers"]
        limits = container["resources"]["limits"]
        assert group["rayStartParams"]["num-cpus"] == limits["cpu"]
        assert group["rayStartParams"].get("num-gpus", "0") == limits.get("nvidia.com/gpu", "0")
        assert group["minReplicas"] <= group["replicas"] <= group["maxReplicas"]
    assert groups["gpu"]["rayStartParams"]["num-gpus"] == "1"
    for spec in [cluster["spec"]["headGroupSpec"], *groups.values()]:
        text = yaml.safe_dump(spec)
        assert "AWS_SECRET_ACCESS_KEY" not in text and "aws_secret" not in text.lower()


def test_rayjob_runs_a_batch_command_line_that_parses_on_the_named_cluster() -> None:
    job, cluster = load("rayjob.yaml"), load("raycluster.yaml")
    assert (job["apiVersion"], job["kind"]) == ("ray.io/v1", "RayJob")
    assert job["spec"]["clusterSelector"]["ray.io/cluster"] == cluster["metadata"]["name"]
    words = shlex.split(job["spec"]["entrypoint"])
    assert words[:2] == ["musedub", "batch"]
    command = typer.main.get_command(app).commands["batch"]  # type: ignore[attr-defined]
    context = command.make_context("batch", words[2:], resilient_parsing=False)
    assert context.params["manifest"].startswith("s3://") and context.params["device"] == "cuda"
