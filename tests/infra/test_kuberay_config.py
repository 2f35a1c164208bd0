"""The KubeRay manifests must agree with themselves and with the `musedub batch` command line."""

from __future__ import annotations

import shlex
from pathlib import Path

import typer
import yaml

from musedub.jobs.cli import app

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
        assert {"name": "OMP_WAIT_POLICY", "value": "PASSIVE"} in container["env"]
        env = {e["name"]: e["value"] for e in container["env"]}  # the block cache on a volume that holds it
        (mount,) = [m for m in container["volumeMounts"] if env["MUSEDUB_CACHE_DIR"].startswith(m["mountPath"])]
        (volume,) = [v for v in group["template"]["spec"]["volumes"] if v["name"] == mount["name"]]
        assert int(env["MUSEDUB_CACHE_BYTES"]) < int(volume["emptyDir"]["sizeLimit"].removesuffix("Gi")) * 2**30
    assert groups["gpu"]["rayStartParams"]["num-gpus"] == "1"
    for spec in [cluster["spec"]["headGroupSpec"], *groups.values()]:
        text = yaml.safe_dump(spec)
        assert "AWS_SECRET_ACCESS_KEY" not in text and "aws_secret" not in text.lower()


def parsed_entrypoint(job: dict, *command: str) -> dict:
    """The RayJob's entrypoint parsed by the real `musedub` command line; it must target our cluster."""
    assert (job["apiVersion"], job["kind"]) == ("ray.io/v1", "RayJob")
    assert job["spec"]["clusterSelector"]["ray.io/cluster"] == load("raycluster.yaml")["metadata"]["name"]
    words = shlex.split(job["spec"]["entrypoint"])
    assert words[: 1 + len(command)] == ["musedub", *command]
    group = typer.main.get_command(app)
    for name in command:
        group = group.commands[name]  # type: ignore[attr-defined]
    return group.make_context(" ".join(command), words[1 + len(command) :], resilient_parsing=False).params


def test_rayjob_runs_a_batch_command_line_that_parses_on_the_named_cluster() -> None:
    params = parsed_entrypoint(load("rayjob.yaml"), "batch")
    assert params["manifest"].startswith("s3://") and params["device"] == "cuda"


def test_nightly_cronjob_creates_one_catalog_rayjob_at_a_time_with_least_privilege() -> None:
    docs = {d["kind"]: d for d in yaml.safe_load_all((KUBERAY / "catalog-cronjob.yaml").read_text())}
    cron = docs["CronJob"]["spec"]
    assert cron["concurrencyPolicy"] == "Forbid"
    pod = cron["jobTemplate"]["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == docs["ServiceAccount"]["metadata"]["name"]
    assert docs["Role"]["rules"] == [
        {"apiGroups": ["ray.io"], "resources": ["rayjobs"], "verbs": ["create", "get", "list"]}
    ]
    (container,) = pod["containers"]
    mounted = container["command"][-1]
    (mount,) = container["volumeMounts"]
    config = docs["ConfigMap"]
    assert (
        mounted == f"{mount['mountPath']}/rayjob.yaml"
        and pod["volumes"][0]["configMap"]["name"] == config["metadata"]["name"]
    )
    params = parsed_entrypoint(yaml.safe_load(config["data"]["rayjob.yaml"]), "catalog", "run")
    assert params["catalog"].startswith("s3://") and params["output_prefix"].startswith("s3://")
