"""docker-compose.yml and deploy/ checked offline (no Docker engine here): every service, command,
port, volume, dependency and environment variable against the code, and the files the services
share (RabbitMQ definitions, nginx routes, the env file) against each other."""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import os
import re
import shutil
import subprocess
import tarfile
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from libs.contracts import SUBSCRIPTIONS
from libs.messaging.topology import DEAD_LETTERS, EVENTS, RETRIES, all_consumer_queues, gateway_queue
from libs.settings import Settings
from services import SERVICE_NAMES, WEB_MOUNTS
from tests.support.deploy import (
    DEPLOY,
    ROOT,
    check_compose,
    consuming_services,
    environment,
    load_compose,
    policy_matches,
    read_env_file,
    served_services,
)

DISTRIBUTED = Settings(BROKER_URL="amqp://h:h@rabbitmq/h")  # a broker URL: RabbitMQ queue arguments


@pytest.fixture(scope="module")
def compose() -> dict:
    return load_compose()


@pytest.fixture(scope="module")
def definitions() -> dict:
    return json.loads((DEPLOY / "rabbitmq" / "definitions.json").read_text())


@pytest.fixture(scope="module")
def env() -> dict[str, str]:
    return read_env_file(DEPLOY / "distributed.env")


def test_compose_file_has_no_problems(compose: dict) -> None:
    assert check_compose(compose) == []


def test_every_service_of_the_product_runs(compose: dict) -> None:
    services = compose["services"]
    for name in SERVICE_NAMES:
        assert name in services, f"{name} is missing from docker-compose.yml"
    web = {s for service in services.values() for s in served_services(service)}
    assert web == set(WEB_MOUNTS)
    assert set(SUBSCRIPTIONS) <= consuming_services(services.values())  # every subscription has a consumer
    commands = [service.get("command") for service in services.values()]
    assert ["python", "-m", "services", "relay"] in commands
    assert services["migrate"]["command"] == ["python", "-m", "libs.db.migrate"]


@pytest.mark.parametrize(
    ("mutate", "problem"),
    [
        (
            lambda c: c["services"]["intake"]["environment"].update(WEB_SERVICE="intake"),
            "WEB_SERVICE is not a setting",
        ),
        (lambda c: c["services"]["postgres"]["environment"].update(POSTGRES_PASSWD="x"), "POSTGRES_PASSWD"),
        (
            lambda c: c["services"]["generation"].update(
                command=["python", "-m", "services", "run", "--only", "genration", "--no-web"]
            ),
            "unknown service 'genration'",
        ),
        (
            lambda c: c["services"]["ops"]["environment"].update(WEB_SERVICES="opps"),
            "WEB_SERVICES names 'opps'",
        ),
        (lambda c: c["services"]["review"].update(ports=["8025:8000"]), "host port 8025"),
        (
            lambda c: c["services"]["generation"].update(volumes=["models-cache:/m"]),
            "'models-cache' is not declared",
        ),
        (
            lambda c: c["services"]["relay"]["depends_on"].update(mailpitt={"condition": "service_healthy"}),
            "'mailpitt', which is not a service",
        ),
        (
            lambda c: c["services"]["relay"]["depends_on"].update(
                preprocess={"condition": "service_healthy"}
            ),
            "preprocess to be healthy, but it has no healthcheck",
        ),
        (
            lambda c: c["services"]["review"]["healthcheck"].update(
                test=[
                    "CMD",
                    "python",
                    "-c",
                    "import urllib.request as u; [u.urlopen('http://127.0.0.1:8000' + p) for p in ('/healthz', '/readyz')]",
                ]
            ),
            "/review/healthz",
        ),
        (
            lambda c: c["services"]["generation"]["depends_on"].update(
                **{"generation-gpu": {"condition": "service_started"}}
            ),
            "only runs in profiles",
        ),
    ],
)
def test_mistakes_are_reported(compose: dict, mutate, problem: str) -> None:
    broken = copy.deepcopy(compose)
    mutate(broken)
    problems = check_compose(broken)
    assert any(problem in p for p in problems), problems


def test_a_typo_in_the_env_file_fails(tmp_path: Path, compose: dict) -> None:
    (tmp_path / "deploy").mkdir()
    for name in ("Dockerfile", "gunicorn.conf.py", "nginx.conf"):
        (tmp_path / "deploy" / name).write_text((DEPLOY / name).read_text())
    (tmp_path / "deploy" / "rabbitmq").symlink_to(DEPLOY / "rabbitmq")
    text = (DEPLOY / "distributed.env").read_text().replace("S3_REGION=", "S3_REGOIN=")
    (tmp_path / "deploy" / "distributed.env").write_text(text + "WEB_THREADS=many\n")
    problems = check_compose(compose, root=tmp_path)
    assert "intake: S3_REGOIN is not a setting (libs/settings.py)" in problems
    assert any("WEB_THREADS='many' is not a valid int" in p for p in problems)


def test_env_file_is_the_distributed_mode(env: dict[str, str]) -> None:
    settings = Settings.from_env(env)
    assert not settings.embedded_broker
    assert settings.database_url.startswith("postgresql+psycopg://")
    assert settings.BLOB_URL.startswith("s3://") and settings.S3_ENDPOINT_URL
    assert settings.SMTP_URL.startswith("smtp://")
    assert settings.HOST == "0.0.0.0"


def test_services_reach_the_infrastructure_with_its_own_credentials(
    compose: dict, env: dict[str, str], definitions: dict
) -> None:
    services = compose["services"]
    broker = urlsplit(env["BROKER_URL"])
    assert broker.hostname in services and broker.port == 5672
    user = next(u for u in definitions["users"] if u["name"] == broker.username)
    stored = base64.b64decode(user["password_hash"])
    salt, digest = stored[:4], stored[4:]
    assert hashlib.sha256(salt + (broker.password or "").encode()).digest() == digest
    vhost = broker.path.lstrip("/")
    assert {"name": vhost} in definitions["vhosts"]
    assert any(p["user"] == user["name"] and p["vhost"] == vhost for p in definitions["permissions"])

    database = urlsplit(env["DATABASE_URL"])
    pg = environment(services["postgres"])
    assert (database.hostname, database.username, database.password, database.path.lstrip("/")) == (
        "postgres",
        pg["POSTGRES_USER"],
        pg["POSTGRES_PASSWORD"],
        pg["POSTGRES_DB"],
    )

    minio = environment(services["minio"])
    assert (env["S3_ACCESS_KEY_ID"], env["S3_SECRET_ACCESS_KEY"]) == (
        minio["MINIO_ROOT_USER"],
        minio["MINIO_ROOT_PASSWORD"],
    )
    assert urlsplit(env["S3_ENDPOINT_URL"]).hostname == "minio"
    bucket = urlsplit(env["BLOB_URL"]).netloc
    buckets = services["buckets"]
    assert buckets["command"] == ["mb", "--ignore-existing", f"store/{bucket}"]
    mc_host = urlsplit(environment(buckets)["MC_HOST_store"])
    assert (mc_host.username, mc_host.password, mc_host.hostname) == (
        minio["MINIO_ROOT_USER"],
        minio["MINIO_ROOT_PASSWORD"],
        "minio",
    )
    assert urlsplit(env["SMTP_URL"]).hostname == "mailpit"


def test_rabbitmq_definitions_declare_what_the_topology_declares(compose: dict, definitions: dict) -> None:
    rabbitmq = compose["services"]["rabbitmq"]
    assert rabbitmq["image"].endswith("-management")  # the management plugin: UI, API, KEDA's queue depth
    assert "./deploy/rabbitmq/definitions.json:/etc/rabbitmq/definitions.json:ro" in rabbitmq["volumes"]
    conf = (DEPLOY / "rabbitmq" / "rabbitmq.conf").read_text()
    assert "load_definitions = /etc/rabbitmq/definitions.json" in conf
    declared = {(e["name"], e["type"], e["durable"]) for e in definitions["exchanges"]}
    assert declared == {(x.name, x.type, x.durable) for x in (EVENTS, DEAD_LETTERS, RETRIES)}


def test_the_policy_matches_every_consumer_queue_and_nothing_else(definitions: dict, env: dict) -> None:
    (policy,) = definitions["policies"]
    # The same limit the services declare on their queues (x-delivery-limit): never a second opinion.
    assert policy["definition"] == {"delivery-limit": Settings.from_env(env).DELIVERY_LIMIT}
    assert policy["apply-to"] == "quorum_queues"
    queues = all_consumer_queues(DISTRIBUTED)
    assert {q.service for q in queues} == set(SUBSCRIPTIONS)
    for q in queues:
        assert policy_matches(policy["pattern"], q.name), q.name
        assert q.main.queue_arguments["x-delivery-limit"] == policy["definition"]["delivery-limit"]
        assert q.retry is not None
        for other in (q.dead.name, q.retry.name):
            assert not policy_matches(policy["pattern"], other), other
    assert not policy_matches(policy["pattern"], gateway_queue().name)


def test_nginx_routes_every_mount_to_its_service(compose: dict) -> None:
    conf = (DEPLOY / "nginx.conf").read_text()
    upstreams = dict(re.findall(r"upstream (\w+)\s*\{\s*server ([\w-]+):8000", conf))
    locations = dict(re.findall(r"location (/\w*) \{\s*proxy_pass http://(\w+);", conf))
    for name, mount in WEB_MOUNTS.items():
        assert locations[mount or "/"] == name
        assert upstreams[name] == name and name in compose["services"]
    gateway = conf[conf.index("location /gateway") :]
    gateway = gateway[: gateway.index("}")]
    assert "proxy_set_header Upgrade $http_upgrade;" in gateway
    assert "proxy_set_header Connection $connection_upgrade;" in gateway
    assert compose["services"]["proxy"]["volumes"] == ["./deploy/nginx.conf:/etc/nginx/nginx.conf:ro"]


def test_gpu_workers_render_with_diffusion_on_a_reserved_gpu(compose: dict) -> None:
    gpu = compose["services"]["generation-gpu"]
    assert gpu["profiles"] == ["gpu"]
    assert gpu["command"] == compose["services"]["generation"]["command"]
    env = environment(gpu)
    assert env["ENGINE"] == "diffusion" and env["MODEL_DIR"].startswith("/models/")
    (device,) = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia" and device["capabilities"] == ["gpu"]
    assert any(v.endswith(":/models:ro") for v in gpu["volumes"])
    # Person models are shared by every generation worker (training on one, rendering on another).
    assert f"person-models:{env['PERSON_MODEL_DIR']}" in gpu["volumes"]
    assert f"person-models:{env['PERSON_MODEL_DIR']}" in compose["services"]["generation"]["volumes"]


def test_the_image_ships_the_gunicorn_config() -> None:
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    assert "COPY deploy/gunicorn.conf.py ./deploy/gunicorn.conf.py" in dockerfile
    assert dockerfile.startswith("#") and "FROM python:3.11-slim" in dockerfile
    assert (ROOT / "requirements.txt").read_text().count("\ngunicorn==") == 1


def _dockerfile_stages(text: str) -> list[tuple[str, str, list[str]]]:
    """(image, stage name, instructions) per FROM, continuation lines joined."""
    stages: list[tuple[str, str, list[str]]] = []
    for line in re.sub(r"\\\n\s*", " ", text).splitlines():
        line = line.strip()
        found = re.fullmatch(r"FROM (\S+)(?: AS (\S+))?", line)
        if found:
            stages.append((found[1], found[2] or "", []))
        elif line and not line.startswith("#") and stages:
            stages[-1][2].append(line)
    return stages


def test_the_image_ships_the_socketio_client_fetched_like_make_vendor() -> None:
    """The waiting page's Socket.IO client is not in the repository: the image build fetches it
    with the same pinned script as `make vendor`, into the file intake serves."""
    served = "services/intake/static/vendor/socket.io.min.js"
    assert (
        "filename='vendor/socket.io.min.js'" in (ROOT / "services/intake/templates/waiting.html").read_text()
    )
    script = "deploy/socketio-client.sh"
    *builders, (image, _name, final) = _dockerfile_stages((DEPLOY / "Dockerfile").read_text())
    assert image == "python:3.11-slim"
    (fetch,) = [stage for stage in builders if stage[0].startswith("node:")]
    node_image, stage, steps = fetch
    assert re.fullmatch(r"node:\d+-slim", node_image), node_image  # a pinned major, no Node in the image
    assert steps[0] == f"COPY {script} /socketio-client.sh"
    (run,) = [s for s in steps if s.startswith("RUN ")]
    assert run.startswith("RUN sh /socketio-client.sh ")
    fetched = run.split()[-1]
    # Copied after the sources, so a developer's own vendor/ folder in the build context never wins.
    copy = f"COPY --from={stage} {fetched} ./{served}"
    assert copy in final and final.index(copy) > final.index("COPY services ./services")

    makefile = (ROOT / "Makefile").read_text()
    assert f"SOCKETIO_JS := {served}\n" in makefile
    assert f"\t@sh {script} $@" in makefile
    assert f"$(SOCKETIO_JS): {script}\n" in makefile  # a new pin fetches again
    text = (ROOT / script).read_text()
    assert re.search(r"^VERSION=\d+\.\d+\.\d+$", text, re.M)  # exact, never a range
    assert re.search(r"^INTEGRITY=sha512-[A-Za-z0-9+/]{86}==$", text, re.M)


def test_a_socketio_client_that_is_not_the_pinned_one_is_refused(tmp_path: Path) -> None:
    """The fetch script checks the package against its pinned integrity before using it: here an
    `npm` that hands over another tarball (a tampered mirror, a wrong version)."""
    node = shutil.which("node")
    assert node, "the fetch script hashes with Node.js: apt-get install -y nodejs"
    version = re.search(r"^VERSION=(\S+)$", (ROOT / "deploy/socketio-client.sh").read_text(), re.M)[1]
    package = tmp_path / "package" / "dist"
    package.mkdir(parents=True)
    (package / "socket.io.min.js").write_text("window.io = function () { /* not the real one */ };")
    tarball = tmp_path / f"socket.io-client-{version}.tgz"
    with tarfile.open(tarball, "w:gz") as tar:
        tar.add(tmp_path / "package", arcname="package")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "npm").write_text(f'#!/bin/sh\ncp "{tarball}" .\n')
    (bin_dir / "npm").chmod(0o755)
    (bin_dir / "node").symlink_to(node)
    dest = tmp_path / "out" / "socket.io.min.js"
    env = {**os.environ, "PATH": f"{bin_dir}:/usr/bin:/bin"}
    done = subprocess.run(
        ["sh", str(ROOT / "deploy/socketio-client.sh"), str(dest)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    assert f"socket.io-client@{version} does not match its pinned integrity" in done.stderr
    assert not dest.exists()
