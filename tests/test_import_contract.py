"""The import direction of the house (docs/ARCHITECTURE.md), checked on every module's AST.

Layers, lowest first: infra < models < core/media/face/audio < generators < dub (may use
generators), dataset, evaluation < catalog (may use dub), train (may use dataset) < jobs. `ray` is
imported only by the core adapter and stream pool, `infra.ray_cluster` (joining a cluster) and
`train`; `ray.data` only by the adapter, `ray.train` only by `train`. Imports inside functions count too.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FOLDERS = {"infra": "infra", "models": "models", "pipeline": "pipeline", "jobs": "jobs", "": "musedub"}

BASE = {"musedub.infra", "musedub.models"}
LEAVES = BASE | {f"musedub.pipeline.{p}" for p in ("core", "media", "face", "audio")}
# what each area may import from musedub, besides itself
ALLOWED: dict[str, set[str]] = {
    "musedub.infra": set(),
    "musedub.models": {"musedub.infra"},
    **{leaf: BASE for leaf in LEAVES - BASE},
    "musedub.pipeline.generators": LEAVES,
    "musedub.pipeline.dub": LEAVES | {"musedub.pipeline.generators"},
    "musedub.pipeline.dataset": LEAVES,
    "musedub.pipeline.evaluation": LEAVES,
    "musedub.pipeline.catalog": LEAVES | {"musedub.pipeline.dub", "musedub.pipeline.generators"},
    "musedub.pipeline.train": LEAVES | {"musedub.pipeline.dataset"},
}
EXTERNAL: dict[str, set[str]] = {  # a module prefix -> the areas (or modules) allowed to import it
    "ray.data": {"musedub.pipeline.core.ray_adapter"},
    "ray.train": {"musedub.pipeline.train"},
    "ray": {
        "musedub.pipeline.core.ray_adapter",
        "musedub.pipeline.core.stream_pool",
        "musedub.infra.ray_cluster",
        "musedub.pipeline.train",
    },
}


def area(module: str) -> str:
    """The area a module belongs to: `musedub.pipeline.dub.plan` -> `musedub.pipeline.dub`."""
    parts = module.split(".")
    depth = 3 if parts[:2] == ["musedub", "pipeline"] else 2
    return ".".join(parts[:depth])


def product_modules() -> dict[str, str]:
    """Every product module's dotted name and source, read from the repository's folders."""
    modules = {}
    for prefix, folder in FOLDERS.items():
        for path in sorted((ROOT / folder).rglob("*.py")):
            rel = path.relative_to(ROOT / folder).with_suffix("").parts
            rel = rel[:-1] if rel[-1] == "__init__" else rel
            name = ".".join(["musedub", *([prefix] if prefix else []), *rel])
            modules[name] = path.read_text()
    return modules


def imported(source: str) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def permitted(module: str, allowed: set[str]) -> bool:
    return any(module == a or module.startswith(a + ".") for a in allowed)


def violations(modules: dict[str, str]) -> list[str]:
    found = []
    for module, source in modules.items():
        top = module == "musedub" or area(module) in ("musedub.jobs", "musedub.pipeline")
        own = None if top else area(module)  # the top (jobs, the public API) may import anything
        for name in sorted(imported(source)):
            if name.startswith("musedub.") and own is not None:
                target = area(name)
                if target != own and target not in ALLOWED.get(own, set()):
                    found.append(f"{module} imports {name}: {own} may not import {target}")
            for prefix, allowed in EXTERNAL.items():
                if (name == prefix or name.startswith(prefix + ".")) and not permitted(module, allowed):
                    found.append(f"{module} imports {name}: only {sorted(allowed)} may")
                    break
    return sorted(set(found))


def test_every_area_has_a_rule() -> None:
    areas = {area(m) for m in product_modules()} - {"musedub", "musedub.jobs", "musedub.pipeline"}
    assert areas <= set(ALLOWED), f"areas without an import rule: {sorted(areas - set(ALLOWED))}"


def test_the_product_keeps_the_import_direction() -> None:
    assert violations(product_modules()) == []


def test_a_forbidden_import_fails_the_contract() -> None:
    modules = product_modules()
    cases = {
        "musedub.infra.storage": "from musedub.models.vae import CROP_SIZE\n",
        "musedub.models.unet": "import musedub.pipeline.media.probe\n",
        "musedub.pipeline.media.probe": "from musedub.pipeline.audio.windows import WHISPER_HZ\n",
        "musedub.pipeline.dub.plan": "from musedub.pipeline.dataset import tables\n",
        "musedub.pipeline.dataset.source": "def f():\n    from musedub.pipeline.dub.options import DubOptions\n",
        "musedub.pipeline.evaluation.stage": "import musedub.pipeline.train.config\n",
        "musedub.pipeline.dub.batch": "import ray\n",
        "musedub.pipeline.dataset.preprocess": "from ray.data import Dataset\n",
        "musedub.pipeline.core.ray_adapter": "import ray.train\n",
    }
    for module, extra in cases.items():
        assert module in modules, module
        broken = {**modules, module: modules[module] + extra}
        assert violations(broken), f"{module} + {extra!r} passed the contract"


@pytest.mark.parametrize("task", ["plan_task", "finish_task"])
def test_a_batch_task_worker_imports_no_model_code(task: str) -> None:
    """Ray imports a task's module on every worker that runs it (plan workers: 4 per CPU): torch,
    transformers and diffusers there cost 5 CPU s and 600 MB a worker before its first task."""
    heavy = ("torch", "transformers", "diffusers", "dlib", "face_alignment")
    probe = f"import sys, musedub.pipeline.dub.{task}; print([m for m in {heavy!r} if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=120)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr
