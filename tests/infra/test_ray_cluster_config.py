"""ray_cluster.yaml must be a valid `ray up` config with CPU head, CPU and GPU worker types."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import ray
import yaml

ROOT = Path(__file__).resolve().parents[2]


def test_ray_cluster_yaml_follows_rays_schema() -> None:
    config = yaml.safe_load((ROOT / "ray_cluster.yaml").read_text())
    schema = json.loads((Path(ray.__file__).parent / "autoscaler" / "ray-schema.json").read_text())
    jsonschema.validate(config, schema)
    types = config["available_node_types"]
    assert types["gpu_worker"]["resources"]["GPU"] == 1
    assert "GPU" not in types.get("cpu_worker", {}).get("resources", {})
    assert config["head_node_type"] == "head"
    assert any("pip install -e /home/ubuntu/musedub" in c for c in config["setup_commands"])
