"""The Kubernetes manifests as objects: render a kustomize overlay and validate what it holds, offline.

Core Kubernetes kinds are checked against the schemas kubernetes-validate ships (strict: unknown fields
fail). Custom resources (KubeRay, Prometheus Operator) are checked against the JSON schemas in
deploy/schemas/, and a RayCluster's pod templates against Kubernetes' own PodTemplateSpec as well.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import yaml
from referencing import Registry, Resource

from tests.support.install_kubectl import MIN_KUSTOMIZE, kustomize_major

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
OVERLAYS = ("dev", "prod")
KUBERNETES_VERSION = "1.32"  # the kubectl `make kubectl` installs is a 1.32 client
KUBECTL = REPO / ".make" / "bin" / "kubectl"  # where `make kubectl` puts it (tests/support/install_kubectl.py)
RENDER_TIMEOUT_S = 120
CUSTOM_SCHEMAS = {
    ("ray.io/v1", "RayCluster"): "raycluster.json",
    ("monitoring.coreos.com/v1", "ServiceMonitor"): "servicemonitor.json",
    ("monitoring.coreos.com/v1", "PodMonitor"): "podmonitor.json",
    ("monitoring.coreos.com/v1", "PrometheusRule"): "prometheusrule.json",
    ("monitoring.coreos.com/v1alpha1", "ScrapeConfig"): "scrapeconfig.json",
}

Obj = dict[str, Any]


def kubectl() -> str:
    """Path of the kubectl `make kubectl` installs (or, without it, one on PATH), or an AssertionError that says
    what is missing."""
    if KUBECTL.exists():
        return str(KUBECTL)
    found = shutil.which("kubectl")
    if found is None:
        raise AssertionError(f"no kubectl: the manifest tests render deploy/overlays/* with `kubectl kustomize`; "
                             f"`make kubectl` installs one (kustomize v5) at {KUBECTL}")
    if kustomize_major(found) < MIN_KUSTOMIZE:
        raise AssertionError(f"{found} embeds a kustomize older than v{MIN_KUSTOMIZE}; `make kubectl` installs a "
                             f"current one at {KUBECTL}")
    return found


def render(overlay: str) -> list[Obj]:
    """Every object `kubectl kustomize deploy/overlays/<overlay>` prints."""
    proc = subprocess.run([kubectl(), "kustomize", str(DEPLOY / "overlays" / overlay)], capture_output=True,
                          text=True, timeout=RENDER_TIMEOUT_S, check=False)
    if proc.returncode != 0:
        raise AssertionError(f"kubectl kustomize deploy/overlays/{overlay} failed:\n{proc.stderr}")
    return [doc for doc in yaml.safe_load_all(proc.stdout) if doc]


@cache
def _schemas() -> tuple[Registry, dict[str, Any]]:
    registry: Registry = Registry()
    by_file = {}
    for path in sorted((DEPLOY / "schemas").glob("*.json")):
        schema = json.loads(path.read_text(encoding="utf-8"))
        registry = registry.with_resource(schema["$id"], Resource.from_contents(schema))
        by_file[path.name] = schema
    return registry, by_file


def name_of(obj: Obj) -> str:
    """kind/name, for messages."""
    return f"{obj.get('kind')}/{obj.get('metadata', {}).get('name')}"


def _kubernetes_errors(obj: Obj, label: str) -> list[str]:
    try:
        kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
    except kubernetes_validate.ValidationError as err:
        return [f"{label}: {'.'.join(map(str, err.path)) or '<root>'}: {err.message}"]
    except kubernetes_validate.SchemaNotFoundError as err:
        return [f"{label}: no Kubernetes schema: {err.message}"]
    return []


def ray_pod_templates(obj: Obj) -> Iterator[tuple[str, Obj]]:
    """(group name, pod template) of a RayCluster's head and every worker group."""
    spec = obj.get("spec", {})
    if "template" in spec.get("headGroupSpec", {}):
        yield "head", spec["headGroupSpec"]["template"]
    for group in spec.get("workerGroupSpecs", []):
        if "template" in group:
            yield group.get("groupName", "?"), group["template"]


def validation_errors(obj: Obj) -> list[str]:
    """Everything wrong with one rendered object (empty when it is valid)."""
    key = (obj.get("apiVersion"), obj.get("kind"))
    if key not in CUSTOM_SCHEMAS:
        return _kubernetes_errors(obj, name_of(obj))
    registry, by_file = _schemas()
    validator = jsonschema.Draft202012Validator(by_file[CUSTOM_SCHEMAS[key]], registry=registry)
    errors = [f"{name_of(obj)}: {'.'.join(map(str, e.path)) or '<root>'}: {e.message}"
              for e in validator.iter_errors(obj)]
    if obj["kind"] == "RayCluster":
        # A PodTemplate wraps a PodTemplateSpec, so Kubernetes' own schema checks what KubeRay will create.
        for group, template in ray_pod_templates(obj):
            wrapped = {"apiVersion": "v1", "kind": "PodTemplate", "metadata": {"name": f"ray-{group}"},
                       "template": template}
            errors += _kubernetes_errors(wrapped, f"{name_of(obj)} {group} pod template")
    return errors
