"""The Kubernetes manifests (deploy/k8s), built offline like `kubectl kustomize` and validated
against the Kubernetes schemas shipped in the kubernetes-validate package. KEDA's resources are
custom (no schema there): they are checked field by field instead."""

from __future__ import annotations

import copy
import runpy
from typing import Any
from urllib.parse import urlsplit

import kubernetes_validate
import pytest

from libs.contracts import PHOTOS_PROCESSED, SUBSCRIPTIONS, prefetch_for, queue_name
from services import SERVICE_NAMES, WEB_MOUNTS
from tests.support.deploy import DEPLOY, SETTING_NAMES, check_command, consuming_services
from tests.support.kube import build, containers, env_problems, find, pod_spec

BASE = DEPLOY / "k8s" / "base"
PRODUCTION = DEPLOY / "k8s" / "overlays" / "production"
KUBERNETES = "1.37"
CUSTOM_RESOURCES = {("keda.sh/v1alpha1", "ScaledObject"), ("keda.sh/v1alpha1", "TriggerAuthentication")}


@pytest.fixture(scope="module", params=["base", "production"])
def resources(request: pytest.FixtureRequest) -> list[dict[str, Any]]:
    return build(BASE if request.param == "base" else PRODUCTION)


@pytest.fixture(scope="module")
def production() -> list[dict[str, Any]]:
    return build(PRODUCTION)


def test_every_resource_is_valid_kubernetes(resources: list[dict[str, Any]]) -> None:
    for resource in resources:
        if (resource["apiVersion"], resource["kind"]) in CUSTOM_RESOURCES:
            continue
        kubernetes_validate.validate(resource, KUBERNETES, strict=True)


def test_the_schema_check_catches_mistakes(resources: list[dict[str, Any]]) -> None:
    deployment = copy.deepcopy(find(resources, "Deployment", "intake"))
    deployment["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["httpGet"]["paht"] = "/readyz"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES, strict=True)
    hpa = copy.deepcopy(find(resources, "HorizontalPodAutoscaler", "intake"))
    hpa["spec"]["minReplicas"] = "three"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(hpa, KUBERNETES, strict=True)


def test_every_variable_is_a_setting(resources: list[dict[str, Any]]) -> None:
    assert env_problems(resources, SETTING_NAMES) == []
    broken = copy.deepcopy(resources)
    find(broken, "ConfigMap", "headshots-settings")["data"]["PUBLIC_ULR"] = "https://x"
    containers(find(broken, "Deployment", "generation"))[0]["env"].append({"name": "ENGIN", "value": "x"})
    find(broken, "ConfigMap", "headshots-settings")["data"]["WEB_THREADS"] = "lots"
    every_pod = [f"{r['kind']} {r['metadata']['name']}" for r in broken if containers(r)]
    assert sorted(env_problems(broken, SETTING_NAMES)) == sorted(
        [
            "ConfigMap headshots-settings: PUBLIC_ULR is not a setting",
            "Deployment generation: ENGIN is not a setting",
            *[f"{pod}: WEB_THREADS='lots' is not a valid int" for pod in every_pod],
        ]
    )


def test_every_command_runs_something_of_ours(resources: list[dict[str, Any]]) -> None:
    for resource in resources:
        for container in containers(resource):
            env = {item["name"]: item["value"] for item in container.get("env", [])}
            as_compose = {"build": {}, "command": container["command"], "environment": env}
            assert check_command(resource["metadata"]["name"], as_compose) == []
    deployments = {r["metadata"]["name"] for r in resources if r["kind"] == "Deployment"}
    assert set(SERVICE_NAMES) | {"relay"} <= deployments
    # Every subscription has a consumer: gunicorn's pods serve the web only.
    pods = [{"command": c["command"]} for r in resources for c in containers(r)]
    assert set(SUBSCRIPTIONS) <= consuming_services(pods)
    job = find(resources, "Job", "migrate")
    assert containers(job)[0]["command"] == ["python", "-m", "libs.db.migrate"]
    assert job["spec"]["template"]["spec"]["restartPolicy"] == "OnFailure"


@pytest.mark.parametrize("name", sorted(WEB_MOUNTS))
def test_web_services_are_probed_served_scaled_and_protected(
    resources: list[dict[str, Any]], name: str
) -> None:
    deployment = find(resources, "Deployment", name)
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    (container,) = containers(deployment)
    mount = WEB_MOUNTS[name]
    assert container["readinessProbe"]["httpGet"] == {"path": f"{mount}/readyz", "port": "http"}
    assert container["livenessProbe"]["httpGet"] == {"path": f"{mount}/healthz", "port": "http"}
    assert {"name": "http", "containerPort": 8000} in container["ports"]

    service = find(resources, "Service", name)
    assert service["spec"]["selector"].items() <= labels.items()
    assert service["spec"]["ports"][0]["targetPort"] == "http"

    hpa = find(resources, "HorizontalPodAutoscaler", name)
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": name}
    assert 2 <= hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]
    assert deployment["spec"]["replicas"] == hpa["spec"]["minReplicas"]

    pdb = find(resources, "PodDisruptionBudget", name)
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert pdb["spec"]["minAvailable"] < hpa["spec"]["minReplicas"]  # a node can always drain

    if container["command"][0] == "gunicorn":
        # gunicorn lets requests in flight finish before Kubernetes gives up on the pod.
        config = runpy.run_path(str(DEPLOY / "gunicorn.conf.py"))
        assert config["graceful_timeout"] < pod_spec(deployment)["terminationGracePeriodSeconds"]  # type: ignore[index]


def test_the_ingress_routes_every_mount(resources: list[dict[str, Any]]) -> None:
    routes = {
        path["path"]: path["backend"]["service"]["name"]
        for ingress in resources
        if ingress["kind"] == "Ingress"
        for rule in ingress["spec"]["rules"]
        for path in rule["http"]["paths"]
    }
    assert routes == {mount or "/": name for name, mount in WEB_MOUNTS.items()}
    gateway = find(resources, "Ingress", "gateway")["metadata"]["annotations"]
    assert gateway["nginx.ingress.kubernetes.io/affinity"] == "cookie"
    assert int(gateway["nginx.ingress.kubernetes.io/proxy-read-timeout"]) >= 3600


def test_generation_workers_get_a_gpu_and_scale_on_their_queue(resources: list[dict[str, Any]]) -> None:
    deployment = find(resources, "Deployment", "generation")
    spec = pod_spec(deployment)
    assert spec is not None
    (container,) = spec["containers"]
    assert container["resources"]["requests"]["nvidia.com/gpu"] == 1
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
    env = {item["name"]: item["value"] for item in container["env"]}
    assert env["ENGINE"] == "diffusion"
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert env["MODEL_DIR"].startswith(mounts["base-models"] + "/")
    for volume in spec["volumes"]:
        find(resources, "PersistentVolumeClaim", volume["persistentVolumeClaim"]["claimName"])
    # A session's render must be able to finish when the pod is scaled down.
    assert spec["terminationGracePeriodSeconds"] >= 600

    scaled = find(resources, "ScaledObject", "generation")
    assert scaled["spec"]["scaleTargetRef"] == {"name": "generation"}
    assert 0 <= scaled["spec"]["minReplicaCount"] <= scaled["spec"]["maxReplicaCount"]
    (trigger,) = scaled["spec"]["triggers"]
    assert trigger["type"] == "rabbitmq"
    assert PHOTOS_PROCESSED in SUBSCRIPTIONS["generation"]
    assert trigger["metadata"] == {
        "protocol": "http",
        "queueName": queue_name("generation", PHOTOS_PROCESSED),
        "mode": "QueueLength",
        # One waiting session per pod: a worker takes one at a time (prefetch).
        "value": str(prefetch_for("generation")),
    }
    auth = find(resources, "TriggerAuthentication", trigger["authenticationRef"]["name"])
    (ref,) = auth["spec"]["secretTargetRef"]
    assert ref["parameter"] == "host"
    # The management API (http): its queue length counts unacknowledged messages, the sessions
    # being rendered, so a busy worker is never counted as idle.
    host = urlsplit(find(resources, "Secret", ref["name"])["stringData"][ref["key"]])
    broker = urlsplit(find(resources, "Secret", "headshots-secrets")["stringData"]["BROKER_URL"])
    assert (host.scheme, host.port) == ("http", 15672)
    assert (host.hostname, host.username, host.path) == (broker.hostname, broker.username, broker.path)

    pdb = find(resources, "PodDisruptionBudget", "generation")
    assert pdb["spec"] == {
        "maxUnavailable": 1,
        "selector": {"matchLabels": {"app.kubernetes.io/name": "generation"}},
    }


def test_production_overlay(production: list[dict[str, Any]]) -> None:
    for resource in production:
        if resource["kind"] != "Namespace":
            assert resource["metadata"]["namespace"] == "headshots", resource["metadata"]["name"]
        assert resource["metadata"]["labels"]["app.kubernetes.io/part-of"] == "headshots", resource["kind"]
        for container in containers(resource):
            assert container["image"] == "registry.example.com/headshots:0.1.0"
    settings = find(production, "ConfigMap", "headshots-settings")["data"]
    assert settings["SECURE_COOKIES"] == "true" and settings["PUBLIC_URL"].startswith("https://")
    assert settings["HOST"] == "0.0.0.0"  # kept from the base: patches merge, never drop
    scaled = find(production, "ScaledObject", "generation")["spec"]
    assert (scaled["minReplicaCount"], scaled["maxReplicaCount"]) == (8, 160)
    assert scaled["triggers"][0]["type"] == "rabbitmq"
    assert find(production, "HorizontalPodAutoscaler", "intake")["spec"]["minReplicas"] == 3
    assert find(production, "Deployment", "relay")["spec"]["replicas"] == 2
    pvc = find(production, "PersistentVolumeClaim", "person-models")["spec"]
    assert pvc["resources"]["requests"]["storage"] == "2Ti" and pvc["accessModes"] == ["ReadWriteMany"]
