"""The repository's folders install only under the `musedub` namespace, editable and as a wheel."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FOLDERS = {
    "musedub": "musedub",
    "musedub.pipeline": "pipeline",
    "musedub.jobs": "jobs",
    "musedub.models": "models",
    "musedub.infra": "infra",
}
NO_BARE = """
import importlib, sys
for bare in ("pipeline", "models", "jobs", "infra"):
    try:
        importlib.import_module(bare)
    except ModuleNotFoundError:
        continue
    sys.exit(f"bare {bare} importable")
"""
CHECK = NO_BARE + """
import musedub.infra.storage
assert "torch" not in sys.modules, "import musedub.infra pulled torch in"
from musedub import DubOptions, batch, dub
import musedub.jobs.cli
print(musedub.jobs.cli.__file__)
"""


LAYOUT = NO_BARE + """
import musedub, musedub.pipeline.core, musedub.jobs, musedub.models.weights, musedub.infra
for module in (musedub, musedub.pipeline.core, musedub.jobs, musedub.models.weights, musedub.infra):
    print(module.__file__)
"""


def test_every_package_folder_is_in_the_package_list() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert config["package-dir"] == {**FOLDERS}
    found = set()
    for package, folder in FOLDERS.items():
        for init in (ROOT / folder).rglob("__init__.py"):
            relative = init.parent.relative_to(ROOT / folder).parts
            found.add(".".join([package, *relative]))
    assert found == set(config["packages"])


def test_the_editable_install_exposes_only_the_namespace(tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, "-c", CHECK], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == str(ROOT / "jobs" / "cli.py")


@pytest.mark.slow
def test_a_wheel_installs_the_same_namespace(tmp_path: Path) -> None:
    source = tmp_path / "source"  # a copy: building must not leave build/ in the checkout
    for folder in FOLDERS.values():
        shutil.copytree(ROOT / folder, source / folder, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    build = [
        sys.executable,
        "-m",
        "pip",
        "wheel",
        "--no-deps",
        "--no-build-isolation",
        "-q",
        "-w",
        str(tmp_path),
        str(source),
    ]
    subprocess.run(build, check=True, timeout=300, capture_output=True)
    wheel = next(tmp_path.glob("musedub-*.whl"))
    env = tmp_path / "venv"
    venv.create(env, system_site_packages=True, with_pip=True)  # torch, ray, ... from this machine
    python = env / "bin" / "python"
    install = [str(python), "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)]
    subprocess.run(install, check=True, timeout=300, capture_output=True)
    out = subprocess.run([str(python), "-c", LAYOUT], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert all(line.startswith(str(env)) for line in out.stdout.split()), out.stdout  # the wheel's, not ours
