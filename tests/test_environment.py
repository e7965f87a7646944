"""environment.yml (Binder) must mirror pyproject.toml, the one list of Python dependencies."""

import re
from pathlib import Path

import tomllib
import yaml

ROOT = Path(__file__).resolve().parents[1]
CONDA_NAMES = {"pytorch-cpu": "torch", "pytorch": "torch"}
NOT_PACKAGES = {"python", "pip"}


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~\[; ]", requirement.strip(), maxsplit=1)[0].lower().replace("_", "-")


def _pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return project["dependencies"], project["optional-dependencies"]


def _environment():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    conda, pip = [], []
    for dep in env["dependencies"]:
        if isinstance(dep, dict):
            pip += dep.get("pip", [])
        else:
            conda.append(dep)
    return conda, pip


def test_environment_lists_every_runtime_dependency_of_the_package():
    required, _ = _pyproject()
    conda, _ = _environment()
    have = {CONDA_NAMES.get(_name(d), _name(d)) for d in conda}
    missing = {_name(r) for r in required} - have
    assert not missing, f"environment.yml lacks {sorted(missing)} that pyproject.toml requires"


def test_environment_lists_nothing_pyproject_does_not_know():
    required, extras = _pyproject()
    known = {_name(r) for r in required} | {_name(r) for group in extras.values() for r in group}
    conda, _ = _environment()
    unknown = {CONDA_NAMES.get(_name(d), _name(d)) for d in conda} - known - NOT_PACKAGES
    assert not unknown, f"environment.yml lists {sorted(unknown)}, which pyproject.toml does not"


def test_environment_lower_bounds_match_pyproject():
    required, extras = _pyproject()
    bounds = {_name(r): r[len(_name(r)) :].strip() for r in required + [r for g in extras.values() for r in g]}
    conda, _ = _environment()
    for dep in conda:
        name = CONDA_NAMES.get(_name(dep), _name(dep))
        if name in NOT_PACKAGES:
            continue
        spec = dep[len(_name(dep)) :].strip()
        ours = re.search(r">=\s*([\w.]+)", bounds[name])
        theirs = re.search(r">=\s*([\w.]+)", spec)
        assert ours and theirs and ours.group(1) == theirs.group(1), (
            f"{dep!r} in environment.yml and {name}{bounds[name]} in pyproject.toml disagree"
        )


def test_environment_installs_the_package_itself():
    _, pip = _environment()
    assert any(p.strip() in {".", "-e ."} for p in pip), "environment.yml must pip-install the package"
