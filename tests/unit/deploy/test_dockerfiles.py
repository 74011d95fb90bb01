"""deploy/docker: what can be checked without a Docker engine (none runs here).

Every COPY source exists and is not excluded from the build context, the entry point modules import,
the user is not root, and the ports an image exposes are the ports the manifests give its containers.
"""

from __future__ import annotations

import fnmatch
import importlib.util
import json
import re
import shlex
from pathlib import Path

import pytest

from tests.support.manifests import DEPLOY, OVERLAYS, REPO, ray_pod_templates, render

DOCKERFILES = {"shoal-coordinator": DEPLOY / "docker" / "coordinator.Dockerfile",
               "shoal-embedder": DEPLOY / "docker" / "embedder.Dockerfile"}


def _instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n", " ", path.read_text(encoding="utf-8"))
    lines = [line.strip() for line in text.splitlines()]
    return [(parts[0].upper(), parts[1] if len(parts) > 1 else "")
            for parts in (line.split(None, 1) for line in lines if line and not line.startswith("#"))]


def _ignored(source: str) -> bool:
    patterns = [p.strip() for p in (REPO / ".dockerignore").read_text(encoding="utf-8").splitlines()
                if p.strip() and not p.startswith("#")]
    return any(fnmatch.fnmatch(source, p) or source.startswith(p.rstrip("/") + "/") for p in patterns)


def _image_ports(image: str) -> set[int]:
    """Container ports of every container that runs `image` in either overlay."""
    ports: set[int] = set()
    for overlay in OVERLAYS:
        for obj in render(overlay):
            templates = [obj["spec"]["template"]] if obj["kind"] == "Deployment" else []
            templates += [t for _, t in ray_pod_templates(obj)] if obj["kind"] == "RayCluster" else []
            for template in templates:
                for c in template["spec"]["containers"]:
                    if c["image"].split(":")[0] == image:
                        ports |= {p["containerPort"] for p in c.get("ports", [])}
    return ports


@pytest.mark.parametrize("image", sorted(DOCKERFILES))
def test_dockerfile_builds_from_what_the_repository_has(image: str) -> None:
    steps = _instructions(DOCKERFILES[image])
    assert steps[0] == ("FROM", "python:3.11-slim")
    copies = [shlex.split(args) for op, args in steps if op == "COPY"]
    assert copies, "no COPY"
    for args in copies:
        sources = [a for a in args[:-1] if not a.startswith("--")]
        for source in sources:
            assert (REPO / source).exists(), f"{image}: COPY source {source} is not in the repository"
            assert not _ignored(source), f"{image}: COPY source {source} is excluded by .dockerignore"
    # Every package the image installs is copied in.
    copied = {s for args in copies for s in args[:-1]}
    assert {"pyproject.toml", "README.md", "protos", "coordinator", "shard_node", "embedder", "shoal"} <= copied


@pytest.mark.parametrize("image", sorted(DOCKERFILES))
def test_image_runs_as_non_root_and_starts_a_real_module(image: str) -> None:
    steps = _instructions(DOCKERFILES[image])
    users = [args for op, args in steps if op == "USER"]
    assert users and users[-1].split(":")[0] not in ("0", "root")
    (cmd,) = [args for op, args in steps if op == "CMD"]
    argv = json.loads(cmd)
    assert argv[:2] == ["python", "-m"] and importlib.util.find_spec(argv[2]) is not None, argv
    # The Deployment running this image starts the same module.
    deployment = next(o for o in render("dev") if o["kind"] == "Deployment"
                      and o["spec"]["template"]["spec"]["containers"][0]["image"].startswith(image + ":"))
    assert deployment["spec"]["template"]["spec"]["containers"][0]["command"] == argv


@pytest.mark.parametrize("image", sorted(DOCKERFILES))
def test_exposed_ports_are_the_manifests_ports(image: str) -> None:
    exposed = {int(p.split("/")[0]) for op, args in _instructions(DOCKERFILES[image]) if op == "EXPOSE"
               for p in args.split()}
    assert exposed == _image_ports(image)


def test_embedder_image_pins_torch_before_the_extras() -> None:
    runs = [args for op, args in _instructions(DOCKERFILES["shoal-embedder"]) if op == "RUN"]
    torch = next(i for i, r in enumerate(runs) if "torch==2.13.0" in r)
    extras = next(i for i, r in enumerate(runs) if "[minilm,images]" in r)
    assert torch < extras
