"""Offline checks of the deployment files (docker-compose.yml, deploy/), shared by the tests in
tests/unit/test_deploy*.py. Each check returns a list of readable problems: empty means fine.

No Docker here, so this is `docker compose config` by hand: the YAML is parsed with PyYAML (which
resolves the ``<<`` merge keys and anchors like Compose does) and every service, command, port,
volume, dependency and environment variable is checked against the code (SERVICE_NAMES,
WEB_MOUNTS, libs.settings.Settings, libs.contracts).
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any

import yaml

from libs.settings import Settings
from services import SERVICE_NAMES, WEB_MOUNTS

ROOT = Path(__file__).resolve().parent.parent.parent
COMPOSE = ROOT / "docker-compose.yml"
DEPLOY = ROOT / "deploy"

SETTING_NAMES = frozenset(f.name for f in dataclasses.fields(Settings))

# Variables each third-party image reads, by image name (without tag). Anything else set on
# such a service is a typo or a variable the image ignores.
THIRD_PARTY_ENV: dict[str, frozenset[str]] = {
    "postgres": frozenset({"POSTGRES_USER", "POSTGRES_PASSWORD", "POSTGRES_DB"}),
    "rabbitmq": frozenset(),  # configured by deploy/rabbitmq/*, not by variables
    "minio/minio": frozenset({"MINIO_ROOT_USER", "MINIO_ROOT_PASSWORD"}),
    "minio/mc": frozenset({"MC_HOST_store"}),  # MC_HOST_<alias>: the alias `store`
    "axllent/mailpit": frozenset(),
    "nginx": frozenset(),
}

# Bind-mount sources that users provide (not in the repository).
USER_PROVIDED_MOUNTS = frozenset({"./models"})

RUN_FLAGS = frozenset({"--no-web", "--no-relay", "--own-relay", "--no-workers"})
GUNICORN_ENTRY = "services.wsgi:create_wsgi()"


def load_compose(path: Path = COMPOSE) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text())
    assert isinstance(data, dict)
    return data


def read_env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines, as docker compose reads an env_file (comments and blanks skipped)."""
    values = {}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if "=" not in line:
            raise ValueError(f"{path.name}:{number}: not KEY=VALUE: {line!r}")
        key, value = line.split("=", 1)
        values[key.strip()] = value.strip()
    return values


def image_name(image: str) -> str:
    return image.rsplit(":", 1)[0] if ":" in image.split("/")[-1] else image


def is_ours(service: dict[str, Any]) -> bool:
    return "build" in service


def environment(service: dict[str, Any], root: Path = ROOT) -> dict[str, str]:
    """What the container sees: env_file(s) first, then ``environment:`` (which wins)."""
    env: dict[str, str] = {}
    env_files = service.get("env_file", [])
    for name in [env_files] if isinstance(env_files, str) else env_files:
        env.update(read_env_file(root / name))
    own = service.get("environment", {})
    if isinstance(own, list):
        own = dict(item.split("=", 1) for item in own)
    env.update({k: str(v) for k, v in own.items()})
    return env


def check_env(name: str, service: dict[str, Any], root: Path = ROOT) -> list[str]:
    env = environment(service, root)
    if is_ours(service):
        problems = [
            f"{name}: {key} is not a setting (libs/settings.py)" for key in env if key not in SETTING_NAMES
        ]
        try:
            Settings.from_env({k: v for k, v in env.items() if k in SETTING_NAMES})
        except ValueError as exc:
            problems.append(f"{name}: {exc}")
        return problems
    image = image_name(service.get("image", ""))
    known = THIRD_PARTY_ENV.get(image)
    if known is None:
        return [f"{name}: image {image!r} has no list of known variables in tests/support/deploy.py"]
    return [f"{name}: {key} is not a variable {image} reads" for key in env if key not in known]


def check_command(name: str, service: dict[str, Any], root: Path = ROOT) -> list[str]:
    """Our image runs one of: the migrations, the relay, `services run --only <service>`, or
    gunicorn serving web services (WEB_SERVICES)."""
    if not is_ours(service):
        return []
    command = service.get("command")
    if not isinstance(command, list) or not command:
        return [f"{name}: command must be a non-empty list"]
    if command == ["python", "-m", "libs.db.migrate"] or command == ["python", "-m", "services", "relay"]:
        return []
    if command[:5] == ["python", "-m", "services", "run", "--only"] and len(command) > 5:
        chosen, flags = command[5].split(","), set(command[6:])
        problems = [f"{name}: unknown service {s!r}" for s in chosen if s not in SERVICE_NAMES]
        problems += [f"{name}: unknown flag {f!r}" for f in flags - RUN_FLAGS]
        if "--no-web" not in flags and not any(s in WEB_MOUNTS for s in chosen):
            problems.append(f"{name}: {chosen} serve no web app: add --no-web")
        return problems
    if command[:1] == ["gunicorn"]:
        problems = []
        if command[1:3] != ["--config", "deploy/gunicorn.conf.py"] or command[3:] != [GUNICORN_ENTRY]:
            problems.append(f"{name}: gunicorn must run --config deploy/gunicorn.conf.py {GUNICORN_ENTRY!r}")
        if not (root / "deploy" / "gunicorn.conf.py").is_file():
            problems.append(f"{name}: deploy/gunicorn.conf.py is missing")
        served = [s for s in environment(service, root).get("WEB_SERVICES", "").split(",") if s]
        if not served:
            problems.append(f"{name}: gunicorn needs WEB_SERVICES")
        problems += [
            f"{name}: WEB_SERVICES names {s!r}, not a web service" for s in served if s not in WEB_MOUNTS
        ]
        return problems
    return [f"{name}: command {command} runs nothing this project knows"]


def served_services(service: dict[str, Any], root: Path = ROOT) -> list[str]:
    """The web services a service of ours serves (empty for workers)."""
    command = service.get("command") or []
    if command[:1] == ["gunicorn"]:
        return [s for s in environment(service, root).get("WEB_SERVICES", "").split(",") if s]
    if command[:5] == ["python", "-m", "services", "run", "--only"] and "--no-web" not in command:
        return [s for s in command[5].split(",") if s in WEB_MOUNTS]
    return []


def check_healthcheck(name: str, service: dict[str, Any], root: Path = ROOT) -> list[str]:
    """A web service's healthcheck asks its own /healthz and /readyz, on its port, with Python."""
    served = [s for s in served_services(service, root) if s in WEB_MOUNTS] if is_ours(service) else []
    if not served:
        return []
    test = (service.get("healthcheck") or {}).get("test")
    if not test:
        return [f"{name}: a web service needs a healthcheck"]
    text = " ".join(test)
    port = environment(service, root).get("PORT", str(Settings().PORT))
    base = f"http://127.0.0.1:{port}{WEB_MOUNTS[served[0]]}"
    problems = []
    if test[:3] != ["CMD", "python", "-c"]:
        problems.append(f"{name}: healthcheck must run python -c (the image has no curl)")
    if f"'{base}' + p" not in text or "'/healthz'" not in text or "'/readyz'" not in text:
        problems.append(f"{name}: healthcheck must ask {base}/healthz and {base}/readyz")
    return problems


def check_ports(services: dict[str, Any]) -> list[str]:
    seen: dict[str, str] = {}
    problems = []
    for name, service in services.items():
        for port in service.get("ports", []):
            host = str(port).split(":")[0] if ":" in str(port) else str(port)
            if host in seen:
                problems.append(f"{name}: host port {host} is already taken by {seen[host]}")
            seen[host] = name
    return problems


def check_volumes(compose: dict[str, Any], root: Path = ROOT) -> list[str]:
    declared = set((compose.get("volumes") or {}).keys())
    used: set[str] = set()
    problems = []
    for name, service in compose["services"].items():
        for volume in service.get("volumes", []):
            source = str(volume).split(":")[0]
            if source.startswith((".", "/")):
                if source not in USER_PROVIDED_MOUNTS and not (root / source).exists():
                    problems.append(f"{name}: bind mount {source} does not exist")
            elif source not in declared:
                problems.append(f"{name}: volume {source!r} is not declared under volumes:")
            else:
                used.add(source)
    problems += [f"volume {v!r} is declared but no service uses it" for v in sorted(declared - used)]
    return problems


def check_depends_on(services: dict[str, Any]) -> list[str]:
    problems = []
    for name, service in services.items():
        depends = service.get("depends_on", {})
        if isinstance(depends, list):
            problems.append(f"{name}: depends_on needs conditions (service_healthy...), not a list")
            continue
        for target, spec in depends.items():
            if target not in services:
                problems.append(f"{name}: depends on {target!r}, which is not a service")
                continue
            condition = (spec or {}).get("condition")
            other = services[target]
            if condition == "service_healthy" and "healthcheck" not in other:
                problems.append(f"{name}: waits for {target} to be healthy, but it has no healthcheck")
            elif condition == "service_completed_successfully" and other.get("restart", "no") != "no":
                problems.append(
                    f"{name}: waits for {target} to complete, but it restarts ({other['restart']})"
                )
            elif condition not in {"service_healthy", "service_completed_successfully", "service_started"}:
                problems.append(f"{name}: depends on {target} with condition {condition!r}")
            if other.get("profiles") and not service.get("profiles"):
                problems.append(
                    f"{name}: depends on {target}, which only runs in profiles {other['profiles']}"
                )
    return problems


def check_compose(compose: dict[str, Any], root: Path = ROOT) -> list[str]:
    services = compose["services"]
    problems = []
    for name, service in services.items():
        if "image" not in service and "build" not in service:
            problems.append(f"{name}: neither image nor build")
        if "build" in service:
            build = service["build"]
            if not (root / build.get("context", ".") / build.get("dockerfile", "Dockerfile")).is_file():
                problems.append(f"{name}: Dockerfile {build.get('dockerfile')} is missing")
        problems += check_command(name, service, root)
        problems += check_env(name, service, root)
        problems += check_healthcheck(name, service, root)
    problems += check_ports(services)
    problems += check_volumes(compose, root)
    problems += check_depends_on(services)
    return problems


def policy_matches(pattern: str, name: str) -> bool:
    """RabbitMQ matches policy patterns with PCRE ``re:run``: a search, like Python's re.search."""
    return re.search(pattern, name) is not None


def consuming_services(services: Any) -> set[str]:
    """The services whose consumers some process runs (`run --only X` without --no-workers)."""
    consumed: set[str] = set()
    for service in services:
        command = service.get("command") or []
        if command[:5] == ["python", "-m", "services", "run", "--only"] and "--no-workers" not in command:
            consumed.update(command[5].split(","))
    return consumed
