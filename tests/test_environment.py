"""The conda environment, pyproject.toml and the lock agree on what facelab needs."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import yaml
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]


def _norm(req: str) -> tuple[str, str]:
    r = Requirement(req)
    return re.sub(r"[-_.]+", "-", r.name).lower(), str(r.specifier)


def _pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def _conda_to_pip(spec: str) -> str:
    # conda's "name=1.2" means "name==1.2"; other operators are the same.
    return re.sub(r"^([A-Za-z0-9_.\-]+)=(?!=)", r"\1==", spec)


def test_environment_yml_lists_the_same_packages_as_pyproject():
    project = _pyproject()["project"]
    wanted = {_norm(r) for r in project["dependencies"]}
    wanted |= {_norm(r) for r in project["optional-dependencies"]["test"]}
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    assert env["channels"] == ["conda-forge"]
    listed = set()
    for item in env["dependencies"]:
        if isinstance(item, dict):
            listed |= {_norm(r) for r in item["pip"]}
        elif not item.startswith(("python=", "pip")) or item.startswith("pip-"):
            listed.add(_norm(_conda_to_pip(item)))
    assert listed == wanted, f"only in environment.yml: {listed - wanted}; " \
                             f"only in pyproject.toml: {wanted - listed}"


def test_lock_pins_every_dependency_exactly_and_respects_the_measured_pins():
    lock = {}
    for line in (ROOT / "requirements.lock").read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, version = line.partition("==")
            assert version, f"lock line not pinned exactly: {line}"
            lock[re.sub(r"[-_.]+", "-", name).lower()] = version
    project = _pyproject()["project"]
    for req in project["dependencies"] + project["optional-dependencies"]["test"]:
        r = Requirement(req)
        key = re.sub(r"[-_.]+", "-", r.name).lower()
        assert key in lock, f"{r.name} missing from requirements.lock"
        assert r.specifier.contains(lock[key], prereleases=True), (r, lock[key])
    assert lock["torch"] == "2.14.1" and lock["torchvision"] == "0.29.1"
    assert int(lock["setuptools"].split(".")[0]) < 81
    opencv = [k for k in lock if k.startswith("opencv")]
    assert opencv == ["opencv-python-headless"], f"exactly one OpenCV distribution: {opencv}"
    assert int(lock["opencv-python-headless"].split(".")[0]) < 5
    assert not [k for k in lock if k.startswith(("tensorflow", "tf-", "keras"))]


def test_no_deps_list_matches_the_setup_file():
    in_toml = {_norm(r) for r in _pyproject()["tool"]["facelab"]["no-deps"]}
    lines = (ROOT / "requirements-nodeps.txt").read_text().splitlines()
    in_file = {_norm(x) for x in lines if x.strip() and not x.startswith("#")}
    assert in_toml == in_file
