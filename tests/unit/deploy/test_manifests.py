"""deploy/: both overlays render, every object validates offline, and the pieces refer to each other correctly."""

from __future__ import annotations

import copy
import dataclasses
import importlib.util
import json
import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import ray

from coordinator.settings import CoordinatorSettings
from embedder.settings import EmbedderSettings
from protos.serving import ENV_PREFIX, load_settings
from tests.support.manifests import DEPLOY, OVERLAYS, Obj, name_of, ray_pod_templates, render, validation_errors

SETTINGS_OF = {"coordinator": CoordinatorSettings, "embedder": EmbedderSettings}
REQUIRED_KINDS = {"Namespace", "ConfigMap", "Service", "Deployment", "PersistentVolumeClaim", "RayCluster",
                  "ServiceMonitor", "PodMonitor", "PrometheusRule", "ScrapeConfig"}
SECRET_ENV_SUFFIXES = ("_TLS_CERT", "_TLS_KEY", "_TLS_CA", "_TLS_CLIENT_CA", "_API_KEYS_FILE")
HEALTHCHECK = ["python", "-m", "protos.healthcheck"]


@pytest.fixture(scope="module", params=OVERLAYS)
def overlay(request: pytest.FixtureRequest) -> tuple[str, list[Obj]]:
    """(overlay name, its rendered objects)."""
    return request.param, render(request.param)


def _one(objs: list[Obj], kind: str, name: str) -> Obj:
    found = [o for o in objs if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind}/{name}, found {len(found)}"
    return found[0]


def _component(objs: list[Obj], component: str) -> tuple[Obj, dict[str, Any], dict[str, str]]:
    """(Deployment, its main container, the SHOAL_* env of its ConfigMap) of coordinator or embedder."""
    deployment = _one(objs, "Deployment", f"shoal-{component}")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    (ref,) = [e["configMapRef"]["name"] for e in container.get("envFrom", []) if "configMapRef" in e]
    return deployment, container, _one(objs, "ConfigMap", ref)["data"]


def _ray(objs: list[Obj]) -> Obj:
    (cluster,) = [o for o in objs if o["kind"] == "RayCluster"]
    return cluster


def _ports(container: dict[str, Any]) -> dict[str, int]:
    return {p["name"]: p["containerPort"] for p in container.get("ports", [])}


def _secret_mounts(pod_spec: dict[str, Any], container: dict[str, Any]) -> dict[str, str]:
    """mount path -> Secret name, for the container's Secret volumes."""
    secrets = {v["name"]: v["secret"]["secretName"] for v in pod_spec.get("volumes", []) if "secret" in v}
    return {m["mountPath"]: secrets[m["name"]] for m in container.get("volumeMounts", []) if m["name"] in secrets}


def _under(path: str, mounts: dict[str, str]) -> bool:
    return any(path.startswith(root.rstrip("/") + "/") for root in mounts)


def test_overlay_renders_and_every_object_validates(overlay: tuple[str, list[Obj]]) -> None:
    name, objs = overlay
    kinds = sorted(o["kind"] for o in objs)
    print(f"{name}: {len(objs)} objects: {', '.join(kinds)}")
    assert set(kinds) >= REQUIRED_KINDS, f"{name} lacks {REQUIRED_KINDS - set(kinds)}"
    errors = [e for o in objs for e in validation_errors(o)]
    assert errors == [], "\n".join(errors)
    assert all(o["metadata"].get("namespace") == f"shoal{'-dev' if name == 'dev' else ''}"
               for o in objs if o["kind"] != "Namespace")


BROKEN = {
    "Deployment replicas as text": ("Deployment", "shoal-coordinator", lambda o: o["spec"].update(replicas="one")),
    "Service port misspelt": ("Service", "shoal-embedder",
                              lambda o: o["spec"]["ports"][0].update(prot=50061)),
    "RayCluster start param not a string": ("RayCluster", "shoal-ray",
                                            lambda o: o["spec"]["headGroupSpec"]["rayStartParams"].update(
                                                **{"num-cpus": 0})),
    "RayCluster worker without a group name": ("RayCluster", "shoal-ray",
                                               lambda o: o["spec"]["workerGroupSpecs"][0].pop("groupName")),
    "Ray pod template with a bad container field": (
        "RayCluster", "shoal-ray",
        lambda o: o["spec"]["workerGroupSpecs"][0]["template"]["spec"]["containers"][0].update(image=["x"])),
    "ServiceMonitor endpoint with an unknown field": (
        "ServiceMonitor", "shoal", lambda o: o["spec"]["endpoints"][0].update(portName="metrics")),
    "PodMonitor interval not a duration": (
        "PodMonitor", "shoal-ray", lambda o: o["spec"]["podMetricsEndpoints"][0].update(interval="30 seconds")),
    "ScrapeConfig URL without a scheme": (
        "ScrapeConfig", "shoal-shards", lambda o: o["spec"]["httpSDConfigs"][0].update(url="shoal-coordinator:9464")),
    "PrometheusRule rule without expr": (
        "PrometheusRule", "shoal", lambda o: o["spec"]["groups"][0]["rules"][0].pop("expr")),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_a_broken_object_fails_validation(case: str) -> None:
    kind, name, breakage = BROKEN[case]
    original = _one(render("dev"), kind, name)
    assert validation_errors(original) == []
    broken = copy.deepcopy(original)
    breakage(broken)
    assert validation_errors(broken), f"{case}: the validator accepted {name_of(broken)}"


def test_services_select_their_deployments_and_ports(overlay: tuple[str, list[Obj]]) -> None:
    _, objs = overlay
    for service in (o for o in objs if o["kind"] == "Service"):
        selector = service["spec"]["selector"]
        pods = [d for d in objs if d["kind"] == "Deployment"
                and selector.items() <= d["spec"]["template"]["metadata"]["labels"].items()]
        assert len(pods) == 1, f"{name_of(service)} selects {len(pods)} Deployments"
        (deployment,) = pods
        assert deployment["spec"]["selector"]["matchLabels"].items() <= \
            deployment["spec"]["template"]["metadata"]["labels"].items()
        ports = _ports(deployment["spec"]["template"]["spec"]["containers"][0])
        for port in service["spec"]["ports"]:
            assert ports.get(port["targetPort"]) == port["port"], f"{name_of(service)} port {port['name']}"


def test_monitors_reach_real_ports(overlay: tuple[str, list[Obj]]) -> None:
    namespace, objs = overlay[0], overlay[1]
    monitor = _one(objs, "ServiceMonitor", "shoal")
    selector = monitor["spec"]["selector"]
    chosen = [s for s in objs if s["kind"] == "Service"
              and selector["matchLabels"].items() <= s["metadata"]["labels"].items()
              and all(s["metadata"]["labels"].get(e["key"]) in e["values"] for e in selector["matchExpressions"])]
    assert sorted(s["metadata"]["name"] for s in chosen) == ["shoal-coordinator", "shoal-embedder"]
    for service in chosen:
        names = {p["name"] for p in service["spec"]["ports"]}
        assert {e["port"] for e in monitor["spec"]["endpoints"]} <= names, name_of(service)

    cluster = _ray(objs)
    pod_monitor = _one(objs, "PodMonitor", "shoal-ray")
    # KubeRay labels every pod it creates with ray.io/cluster=<RayCluster name>.
    assert pod_monitor["spec"]["selector"]["matchLabels"] == {"ray.io/cluster": cluster["metadata"]["name"]}
    for group, template in ray_pod_templates(cluster):
        ports = _ports(template["spec"]["containers"][0])
        for endpoint in pod_monitor["spec"]["podMetricsEndpoints"]:
            assert endpoint["port"] in ports, f"Ray {group} pods have no port {endpoint['port']}"
    params = {**cluster["spec"]["headGroupSpec"]["rayStartParams"]}
    assert int(params["metrics-export-port"]) == _ports(
        cluster["spec"]["headGroupSpec"]["template"]["spec"]["containers"][0])["metrics"]

    # Shard actors: HTTP service discovery served by the coordinator's metrics port.
    coordinator_svc = _one(objs, "Service", "shoal-coordinator")
    metrics_port = {p["name"]: p["port"] for p in coordinator_svc["spec"]["ports"]}["metrics"]
    (sd,) = _one(objs, "ScrapeConfig", "shoal-shards")["spec"]["httpSDConfigs"]
    ns = coordinator_svc["metadata"]["namespace"]
    assert sd["url"] == f"http://shoal-coordinator.{ns}.svc:{metrics_port}/sd/shards", namespace
    _, _, env = _component(objs, "coordinator")
    assert int(env["SHOAL_METRICS_PORT"]) == metrics_port


def _scraped_jobs(objs: list[Obj]) -> set[str]:
    """The job labels Prometheus gives what the monitors scrape."""
    monitor = _one(objs, "ServiceMonitor", "shoal")
    assert "jobLabel" not in monitor["spec"]  # so the job is the Service name
    jobs = {s["metadata"]["name"] for s in objs if s["kind"] == "Service"
            and {p["name"] for p in s["spec"]["ports"]} >= {e["port"] for e in monitor["spec"]["endpoints"]}}
    relabelled = [*_one(objs, "ScrapeConfig", "shoal-shards")["spec"]["relabelings"],
                  *(r for e in _one(objs, "PodMonitor", "shoal-ray")["spec"]["podMetricsEndpoints"]
                    for r in e.get("relabelings", []))]
    return jobs | {r["replacement"] for r in relabelled if r.get("targetLabel") == "job"}


def test_alerts_and_dashboard_select_jobs_that_are_scraped(overlay: tuple[str, list[Obj]]) -> None:
    _, objs = overlay
    rule = _one(objs, "PrometheusRule", "shoal")
    texts = [r["expr"] for g in rule["spec"]["groups"] for r in g["rules"]]
    texts.append((DEPLOY / "base" / "monitoring" / "grafana-dashboard.json").read_text(encoding="utf-8"))
    matchers = {m for t in texts for m in re.findall(r'job\s*(=~?)\s*\\?"([^"\\]+)', str(t))}
    assert matchers, "the alert rules select no job"
    scraped = _scraped_jobs(objs)
    for op, value in matchers:
        if op == "=" or re.fullmatch(r"[\w-]+(\|[\w-]+)*", value):  # a name, or a list of names a|b
            assert set(value.split("|")) <= scraped, f"job{op}{value!r} selects a job never scraped ({scraped})"
        else:
            assert any(re.fullmatch(value, job) for job in scraped), f"job=~{value!r} matches no scraped job"


def test_dashboard_configmap_carries_the_dashboard(overlay: tuple[str, list[Obj]]) -> None:
    _, objs = overlay
    dashboard = _one(objs, "ConfigMap", "shoal-grafana-dashboard")
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    source = json.loads((DEPLOY / "base" / "monitoring" / "grafana-dashboard.json").read_text(encoding="utf-8"))
    assert json.loads(dashboard["data"]["grafana-dashboard.json"]) == source


@pytest.mark.parametrize("component", sorted(SETTINGS_OF))
def test_config_is_real_settings_and_matches_ports(overlay: tuple[str, list[Obj]], component: str) -> None:
    _, objs = overlay
    _, container, env = _component(objs, component)
    cls = SETTINGS_OF[component]
    fields = {f.name for f in dataclasses.fields(cls)}
    unknown = [k for k in env if not k.startswith(ENV_PREFIX) or k[len(ENV_PREFIX):].lower() not in fields]
    assert unknown == [], f"{component} ConfigMap sets names {cls.__name__} does not read: {unknown}"
    settings = load_settings(cls, [], env=env)  # types convert, as they will in the pod
    ports = _ports(container)
    assert (settings.port, settings.metrics_port) == (ports["grpc"], ports["metrics"])
    assert settings.host == "0.0.0.0"


def test_probes_run_the_health_check_on_real_ports(overlay: tuple[str, list[Obj]]) -> None:
    _, objs = overlay
    assert importlib.util.find_spec("protos.healthcheck") is not None, "the probes run protos.healthcheck"
    for component in SETTINGS_OF:
        _, container, _ = _component(objs, component)
        for kind in ("startupProbe", "readinessProbe", "livenessProbe"):
            command = container[kind]["exec"]["command"]
            assert command[:3] == HEALTHCHECK, f"{component} {kind}: {shlex.join(command)}"
            host, port = command[3].rsplit(":", 1)
            assert host == "127.0.0.1" and int(port) == _ports(container)["grpc"], f"{component} {kind}"
            assert container[kind]["timeoutSeconds"] >= 2


def test_tls_and_api_keys_on_in_prod_only(overlay: tuple[str, list[Obj]]) -> None:
    name, objs = overlay
    prod = name == "prod"
    worker = _ray(objs)["spec"]["workerGroupSpecs"][0]["template"]["spec"]
    worker_mounts = _secret_mounts(worker, worker["containers"][0])
    for component in SETTINGS_OF:
        deployment, container, env = _component(objs, component)
        secret_env = {k: v for k, v in env.items() if k.endswith(SECRET_ENV_SUFFIXES)}
        probe = container["readinessProbe"]["exec"]["command"]
        if not prod:
            assert secret_env == {}, f"dev {component} sets {sorted(secret_env)}"
            assert not any(arg.startswith("--tls") for arg in probe)
            continue
        assert {"SHOAL_TLS_CERT", "SHOAL_TLS_KEY"} <= secret_env.keys(), component
        mounts = _secret_mounts(deployment["spec"]["template"]["spec"], container)
        for key, path in secret_env.items():
            # shard_* files are read by the shard servers, i.e. on the Ray workers.
            where = worker_mounts if key.startswith("SHOAL_SHARD_") else mounts
            assert _under(path, where), f"{component} {key}={path} is on no Secret volume"
        flags = dict(zip(probe[4::2], probe[5::2], strict=True))
        assert _under(flags["--tls-ca"], mounts) and flags["--tls-server-name"]
        if "SHOAL_TLS_CLIENT_CA" in env:  # a server that demands client certificates: the probe shows one
            assert _under(flags["--tls-cert"], mounts) and _under(flags["--tls-key"], mounts)
    if prod:
        _, _, env = _component(objs, "coordinator")
        expected = {"SHOAL_INTERNAL_TLS_CA", "SHOAL_INTERNAL_TLS_CERT", "SHOAL_INTERNAL_TLS_KEY",
                    "SHOAL_SHARD_TLS_CERT", "SHOAL_SHARD_TLS_KEY", "SHOAL_SHARD_TLS_CLIENT_CA", "SHOAL_API_KEYS_FILE"}
        assert expected <= env.keys()
        assert env["SHOAL_INTERNAL_TLS_SERVER_NAME"]


def test_coordinator_reaches_ray_and_shards_find_their_data(overlay: tuple[str, list[Obj]]) -> None:
    _, objs = overlay
    cluster = _ray(objs)
    deployment, container, env = _component(objs, "coordinator")
    settings = load_settings(CoordinatorSettings, [], env=env)
    assert cluster["spec"]["rayVersion"] == ray.__version__, "Ray in the pods must match the coordinator's"
    # KubeRay names the head Service <cluster>-head-svc; 10001 is the Ray Client server.
    head = cluster["spec"]["headGroupSpec"]["template"]["spec"]["containers"][0]
    assert settings.ray_address == f"ray://{cluster['metadata']['name']}-head-svc:{_ports(head)['client']}"
    assert settings.shard_bind_host == "0.0.0.0"

    (workers,) = cluster["spec"]["workerGroupSpecs"]
    offered = json.loads(json.loads(workers["rayStartParams"]["resources"]))
    assert offered.get(settings.shard_ray_resource, 0) >= 1, "workers must offer the shard resource"
    assert settings.shard_ray_resource not in json.loads(json.loads(
        cluster["spec"]["headGroupSpec"]["rayStartParams"].get("resources", '"{}"')))

    claims = {o["metadata"]["name"]: o for o in objs if o["kind"] == "PersistentVolumeClaim"}

    def data_root(pod_spec: dict[str, Any], c: dict[str, Any]) -> tuple[str, str]:
        vols = {v["name"]: v["persistentVolumeClaim"]["claimName"]
                for v in pod_spec["volumes"] if "persistentVolumeClaim" in v}
        (mount,) = [m for m in c["volumeMounts"] if m["name"] in vols]
        return vols[mount["name"]], mount["mountPath"]

    worker_claim, worker_root = data_root(workers["template"]["spec"], workers["template"]["spec"]["containers"][0])
    coord_claim, coord_root = data_root(deployment["spec"]["template"]["spec"], container)
    assert worker_claim == coord_claim and claims[worker_claim]["spec"]["accessModes"] == ["ReadWriteMany"]
    assert Path(settings.shard_data_dir).is_relative_to(worker_root)
    assert Path(settings.shard_data_dir).is_relative_to(coord_root) and Path(settings.data_dir).is_relative_to(
        coord_root)
    for _, template in ray_pod_templates(cluster):
        assert template["spec"]["containers"][0]["image"] == container["image"], "Ray pods run Shoal's image"


def test_embedder_address_is_its_service(overlay: tuple[str, list[Obj]]) -> None:
    _, objs = overlay
    _, _, env = _component(objs, "coordinator")
    service = _one(objs, "Service", "shoal-embedder")
    grpc_port = {p["name"]: p["port"] for p in service["spec"]["ports"]}["grpc"]
    assert env["SHOAL_EMBEDDER_ADDRESS"] == f"shoal-embedder:{grpc_port}"


def test_pods_run_locked_down_with_resources(overlay: tuple[str, list[Obj]]) -> None:
    _, objs = overlay
    templates = [(name_of(d), d["spec"]["template"]) for d in objs if d["kind"] == "Deployment"]
    templates += [(f"ray {g}", t) for g, t in ray_pod_templates(_ray(objs))]
    for label, template in templates:
        pod = template["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] != 0, label
        for c in pod["containers"]:
            assert c["securityContext"]["allowPrivilegeEscalation"] is False, label
            assert c["securityContext"]["capabilities"]["drop"] == ["ALL"], label
            assert {"cpu", "memory"} <= c["resources"]["requests"].keys(), label
            assert {"cpu", "memory"} <= c["resources"]["limits"].keys(), label
            if label.startswith("Deployment/"):
                assert c["securityContext"]["readOnlyRootFilesystem"] is True, label


def test_prod_scales_out_with_budgets_and_spreading() -> None:
    dev, prod = render("dev"), render("prod")
    assert _ray(dev)["spec"]["workerGroupSpecs"][0]["replicas"] == 1
    workers = _ray(prod)["spec"]["workerGroupSpecs"][0]
    assert workers["replicas"] >= 3 and workers["minReplicas"] == workers["replicas"]
    assert "podAntiAffinity" in workers["template"]["spec"]["affinity"]
    embedder = _one(prod, "Deployment", "shoal-embedder")
    assert embedder["spec"]["replicas"] >= 2 and "podAntiAffinity" in embedder["spec"]["template"]["spec"]["affinity"]
    assert not [o for o in dev if o["kind"] == "PodDisruptionBudget"]
    budgets = {o["metadata"]["name"]: o["spec"]["selector"]["matchLabels"]
               for o in prod if o["kind"] == "PodDisruptionBudget"}
    assert budgets["shoal-embedder"].items() <= embedder["spec"]["template"]["metadata"]["labels"].items()
    # KubeRay labels worker pods ray.io/cluster=<name>, ray.io/node-type=worker.
    assert budgets["shoal-ray-workers"] == {"ray.io/cluster": "shoal-ray", "ray.io/node-type": "worker"}
    cpu = lambda objs: _one(objs, "Deployment", "shoal-embedder")["spec"]["template"]["spec"]["containers"][0][  # noqa: E731
        "resources"]["limits"]["cpu"]
    assert float(cpu(prod)) > float(cpu(dev))


def test_prod_ray_gcs_is_fault_tolerant_on_its_redis() -> None:
    """Prod: the RayCluster keeps its GCS state in the Redis the overlay runs (the address is that Service's port,
    the password the Secret Redis itself requires); dev runs without GCS fault tolerance."""
    assert "gcsFaultToleranceOptions" not in _ray(render("dev"))["spec"]
    prod = render("prod")
    options = _ray(prod)["spec"]["gcsFaultToleranceOptions"]
    host, port = options["redisAddress"].rsplit(":", 1)
    service = _one(prod, "Service", host)
    assert int(port) in {p["port"] for p in service["spec"]["ports"]}
    (redis,) = [d for d in prod if d["kind"] == "Deployment"
                and service["spec"]["selector"].items() <= d["spec"]["template"]["metadata"]["labels"].items()]
    container = redis["spec"]["template"]["spec"]["containers"][0]
    assert int(port) in _ports(container).values()
    secret = options["redisPassword"]["valueFrom"]["secretKeyRef"]
    env = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in container["env"] if "valueFrom" in e}
    assert env["REDIS_PASSWORD"] == secret and "--requirepass" in " ".join(container["command"])
    assert "--appendonly yes" in " ".join(container["command"]), "Redis must keep the GCS state on disk"
    assert redis["spec"]["replicas"] == 1 and redis["spec"]["strategy"]["type"] == "Recreate"
    (volume,) = redis["spec"]["template"]["spec"]["volumes"]
    assert _one(prod, "PersistentVolumeClaim", volume["persistentVolumeClaim"]["claimName"])
    assert f"`{secret['name']}`" in (DEPLOY / "README.md").read_text(), "deploy/README.md lists the Secret"
