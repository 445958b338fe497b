"""The compose files of deploy/, checked without a Docker engine: the Compose Specification's schema, mounts
and build inputs present in the repository, host ports, pinned images and versions, and service-to-service
addresses that are service names, never loopback."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jsonschema
import pytest

import global_config
from tests.deploy import compose

ROOT = global_config.ROOT
LOOPBACK = ("localhost", "127.0.0.1", "::1", "0.0.0.0")
SERVING = compose.DEPLOY / "serving" / "docker-compose.yml"
SERVER = compose.DEPLOY / "clearml-server" / "docker-compose.yml"
AGENT = compose.DEPLOY / "agent" / "docker-compose.yml"


def validator(schema: dict[str, Any]) -> jsonschema.protocols.Validator:
    """The schema's own draft (it names 2019-09 by an address jsonschema does not list)."""
    assert "2019-09" in schema["$schema"]
    jsonschema.Draft201909Validator.check_schema(schema)
    return jsonschema.Draft201909Validator(schema)


def test_the_three_stacks_are_there() -> None:
    assert sorted([SERVING, SERVER, AGENT]) == compose.COMPOSE_FILES


@pytest.mark.parametrize("path", compose.COMPOSE_FILES, ids=lambda p: p.parent.name)
def test_compose_file_is_valid_against_the_compose_specification(path: Path, compose_schema: dict) -> None:
    errors = sorted(validator(compose_schema).iter_errors(compose.load(path)), key=str)
    assert not errors, "\n".join(f"{list(e.absolute_path)}: {e.message}" for e in errors)


def test_the_schema_rejects_what_compose_rejects(compose_schema: dict) -> None:
    """The check above can fail: a misspelt key and a wrong type are errors."""
    check = validator(compose_schema)
    good = compose.load(SERVING)
    assert check.is_valid(good)
    misspelt = {
        **good,
        "services": {
            **good["services"],
            "grafana": {"image": "grafana/grafana:10.4.2", "port": ["3000:3000"]},
        },
    }
    replicas = {
        **good,
        "services": {**good["services"], "x": {"image": "a:1", "deploy": {"replicas": "two"}}},
    }
    assert not check.is_valid(misspelt)
    assert not check.is_valid(replicas)


def test_every_variable_is_documented_in_env_example() -> None:
    documented = compose.read_env_file()
    used = {
        match.group("name")
        for path in compose.COMPOSE_FILES
        for match in compose.VARIABLE.finditer(path.read_text())
        if match.group("name")
    }
    assert used - set(documented) == set(), "add these to deploy/.env.example"


def test_required_variables_fail_with_a_message() -> None:
    env = compose.read_env_file()
    del env["CLEARML_API_HOST"]
    with pytest.raises(KeyError, match="CLEARML_API_HOST"):
        compose.load(SERVING, env)


@pytest.mark.parametrize("path", compose.COMPOSE_FILES, ids=lambda p: p.parent.name)
def test_every_bind_mount_exists_in_the_repository(path: Path) -> None:
    mounts = [
        (service, source) for service in compose.services(path) for source, _ in compose.bind_mounts(service)
    ]
    for service, source in mounts:
        host = (service.file.parent / source).resolve()
        assert host.is_relative_to(ROOT), f"{service.name} mounts {source}, outside the repository"
        assert host.exists(), f"{service.name} mounts {source}: {host} does not exist"


def build_inputs(service: compose.Service) -> tuple[Path, Path]:
    build = service.spec["build"]
    context = (service.file.parent / build["context"]).resolve()
    return context, context / build.get("dockerfile", "Dockerfile")


def built_services() -> list[compose.Service]:
    return [s for path in compose.COMPOSE_FILES for s in compose.services(path) if "build" in s.spec]


def dockerfile_copies(dockerfile: Path) -> list[str]:
    sources = []
    for line in dockerfile.read_text().splitlines():
        parts = line.split()
        if parts and parts[0] == "COPY":
            sources += [part for part in parts[1:-1] if not part.startswith("--")]
    return sources


def ignored(context: Path, dockerfile: Path, source: str) -> bool:
    """Whether a `*` + `!exception` ignore file beside the Dockerfile keeps `source` out of the context."""
    ignore = dockerfile.with_name(dockerfile.name + ".dockerignore")
    if not ignore.is_file():
        ignore = context / ".dockerignore"
    if not ignore.is_file():
        return False
    patterns = [p.strip() for p in ignore.read_text().splitlines() if p.strip() and not p.startswith("#")]
    assert patterns[0] == "*", f"{ignore}: these tests understand an allow-list only"
    allowed = [p[1:] for p in patterns[1:] if p.startswith("!")]
    files = [source] if (context / source).is_file() else [
        str(p.relative_to(context)) for p in (context / source).rglob("*.py") if "__pycache__" not in p.parts
    ]  # fmt: skip
    return not files or any(not any(Path(f).match(a) for a in allowed) for f in files)


def test_every_build_context_has_what_its_dockerfile_copies() -> None:
    assert {s.name for s in built_services()} == {
        "automation",
        "clearml-agent",
        "clearml-serving-inference",
        "quality-consumer",
    }
    for service in built_services():
        context, dockerfile = build_inputs(service)
        assert dockerfile.is_file(), f"{service.name}: no {dockerfile}"
        for source in dockerfile_copies(dockerfile):
            assert (context / source).exists(), f"{dockerfile} copies {source}, missing from {context}"
            assert not ignored(context, dockerfile, source), f"{dockerfile}: {source} is dockerignored"


def test_no_two_services_publish_the_same_host_port() -> None:
    """Every stack may run on one Docker host together: no host port twice (any address, same protocol)."""
    seen: dict[tuple[int, str], str] = {}
    for path in compose.COMPOSE_FILES:
        if path == AGENT:
            continue  # the same service the server stack extends
        for name, spec in compose.merged_services(path).items():
            for _ip, port, protocol in compose.host_ports(spec):
                where = f"{path.parent.name}/{name}"
                assert (port, protocol) not in seen, (
                    f"host port {port} of {where} is {seen[(port, protocol)]}'s"
                )
                seen[(port, protocol)] = where
    assert {8008, 8080, 8081, 3000, 9090, 9093} <= {port for port, _ in seen}


def test_the_inference_port_range_has_a_port_per_replica() -> None:
    inference = compose.merged_services(SERVING)["clearml-serving-inference"]
    replicas = inference["deploy"]["replicas"]
    assert isinstance(replicas, int) and replicas >= 1
    assert len(compose.host_ports(inference)) >= replicas
    env = {**compose.read_env_file(), "ASTEROID_INFERENCE_REPLICAS": "3"}
    assert compose.merged_services(SERVING, env)["clearml-serving-inference"]["deploy"]["replicas"] == 3


def image_tag(image: str) -> str | None:
    name = image.rsplit("/", 1)[-1]
    return name.split(":", 1)[1] if ":" in name else None


def dockerfile_images(dockerfile: Path) -> list[str]:
    return [line.split()[1] for line in dockerfile.read_text().splitlines() if line.startswith("FROM ")]


def all_images() -> list[tuple[str, str]]:
    images = [
        (f"{path.parent.name}/{name}", spec["image"])
        for path in compose.COMPOSE_FILES
        for name, spec in compose.merged_services(path).items()
    ]
    images += [(str(build_inputs(s)[1].relative_to(ROOT)), image) for s in built_services()
               for image in dockerfile_images(build_inputs(s)[1])]  # fmt: skip
    return images


def test_every_image_is_pinned_to_a_version() -> None:
    images = all_images()
    assert len(images) >= 15
    for where, image in images:
        tag = image_tag(image)
        assert tag and tag != "latest" and re.search(r"\d+\.\d+", tag), f"{where}: {image} has no version tag"
        assert "$" not in image, f"{where}: {image} is not a literal version"


def dockerfile_arg(dockerfile: Path, name: str) -> str:
    match = re.search(rf"^ARG {name}=(\S+)$", dockerfile.read_text(), re.MULTILINE)
    assert match, f"{dockerfile} has no ARG {name}=<default>"
    return match.group(1)


def test_the_inference_image_loads_models_with_the_pipelines_xgboost(pins: dict[str, str]) -> None:
    dockerfile = compose.DEPLOY / "serving" / "Dockerfile"
    assert dockerfile_arg(dockerfile, "XGBOOST_VERSION") == pins["xgboost"]
    assert 'pip install --no-cache-dir "xgboost==${XGBOOST_VERSION}"' in dockerfile.read_text()
    # the hook's Arrow batches (preprocess_serving.py)
    assert dockerfile_arg(dockerfile, "PYARROW_VERSION") == pins["pyarrow"]
    assert 'pip install --no-cache-dir "pyarrow==${PYARROW_VERSION}"' in dockerfile.read_text()
    # the prediction log forwarder's Kafka checksums in C (asteroid/serving/prediction_forwarder.py)
    assert dockerfile_arg(dockerfile, "CRC32C_VERSION") == pins["crc32c"]
    assert 'pip install --no-cache-dir "crc32c==${CRC32C_VERSION}"' in dockerfile.read_text()
    # ... and its client (librdkafka), which it prefers to kafka-python where installed
    assert dockerfile_arg(dockerfile, "CONFLUENT_KAFKA_VERSION") == pins["confluent-kafka"]
    install = 'pip install --no-cache-dir "confluent-kafka==${CONFLUENT_KAFKA_VERSION}"'
    assert install in dockerfile.read_text()
    assert dockerfile_images(dockerfile) == [f"clearml/clearml-serving-inference:{pins['clearml-serving']}"]
    services = compose.merged_services(SERVING)
    built = services["clearml-serving-inference"]["image"]
    assert image_tag(built) == f"{pins['clearml-serving']}-xgboost{pins['xgboost']}"
    statistics = services["clearml-serving-statistics"]["image"]
    assert statistics == f"clearml/clearml-serving-statistics:{pins['clearml-serving']}"


def test_the_agent_image_runs_the_projects_clearml_agent(pins: dict[str, str]) -> None:
    dockerfile = compose.DEPLOY / "agent" / "Dockerfile"
    assert dockerfile_arg(dockerfile, "CLEARML_AGENT_VERSION") == pins["clearml-agent"]
    for path in (AGENT, SERVER):
        assert image_tag(compose.merged_services(path)["clearml-agent"]["image"]) == pins["clearml-agent"]


def test_the_quality_image_installs_the_pipelines_versions(pins: dict[str, str]) -> None:
    dockerfile = compose.DEPLOY / "quality" / "Dockerfile"
    arguments = re.findall(r"^ARG (\w+)_VERSION=(\S+)$", dockerfile.read_text(), re.MULTILINE)
    assert len(arguments) >= 5
    for name, version in arguments:
        package = name.lower().replace("_", "-")
        pinned = pins.get(package) or pins[package.replace("-", "_")]
        assert version == pinned, f"{dockerfile}: {name}_VERSION={version}, requirements.txt pins {pinned}"
        assert f"=={{{name}_VERSION}}" in dockerfile.read_text().replace("$", "")


def test_grafana_can_provision_alert_rules() -> None:
    """File provisioning of alert rules exists from Grafana 9.1 on."""
    image = compose.merged_services(SERVING)["grafana"]["image"]
    major, minor = (int(part) for part in image_tag(image).split(".")[:2])
    assert (major, minor) >= (9, 1), image


HOST_PORT = re.compile(r"^(?P<host>[A-Za-z0-9_.\-]+):(?P<port>[0-9]+)$")


def addresses(value: str) -> list[str]:
    """Host names in a URL (`http://apiserver:8008`) or a `host:port` value (`kafka:9092`)."""
    hosts = []
    for word in re.split(r"[\s,;]+", value):
        if "://" in word:
            if urlsplit(word).netloc:  # a URL without one names a file (sqlite:////var/lib/...)
                hosts.append(urlsplit(word).hostname or "")
        elif match := HOST_PORT.match(word):
            hosts.append(match.group("host"))
    return hosts


def test_addresses_are_read_from_urls_and_host_ports() -> None:
    assert addresses("http://localhost:8008") == ["localhost"]
    assert addresses("kafka:9092") == ["kafka"]
    assert addresses("PLAINTEXT://kafka:9092,CONTROLLER://:9093") == ["kafka", ""]
    assert addresses("-Xms2g -Xmx2g") == []
    assert addresses("sqlite:////var/lib/asteroid/quality.db") == []


@pytest.mark.parametrize("path", compose.COMPOSE_FILES, ids=lambda p: p.parent.name)
def test_service_urls_are_service_names_never_localhost(path: Path) -> None:
    """Containers reach each other by service name; the ClearML server and the database by an address from the
    environment."""
    services = compose.merged_services(path)
    external = {
        urlsplit(v).hostname for k, v in compose.read_env_file().items() if k.endswith(("_HOST", "_URL"))
    }
    checked = 0
    for name, spec in services.items():
        for key, value in dict(spec.get("environment", {})).items():
            for host in addresses(str(value)):
                if host == "" and key == "KAFKA_LISTENERS":
                    continue  # a listener on every interface of the broker's own container
                assert host not in LOOPBACK, f"{name}: {key}={value} is the container itself"
                assert host in services or host in external, f"{name}: {key}={value}: no service {host!r}"
                checked += 1
    assert checked >= 2


def test_env_example_has_no_loopback_addresses() -> None:
    for key, value in compose.read_env_file().items():
        assert not set(addresses(value)) & set(LOOPBACK), f".env.example: {key}={value}"


def test_the_statistics_and_inference_reach_kafka_where_it_listens() -> None:
    services = compose.merged_services(SERVING)
    advertised = services["kafka"]["environment"]["KAFKA_ADVERTISED_LISTENERS"].split("://", 1)[1]
    for name in ("clearml-serving-inference", "clearml-serving-statistics"):
        assert services[name]["environment"]["CLEARML_DEFAULT_KAFKA_SERVE_URL"] == advertised


SCRIPTS = sorted(compose.DEPLOY.glob("*/*.sh"))


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_entrypoint_is_valid_bash(script: Path) -> None:
    assert os.access(script, os.X_OK), f"{script} is not executable"
    checked = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True, check=False)
    assert checked.returncode == 0, checked.stderr


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
@pytest.mark.parametrize("host", ["http://localhost:8008", "http://127.0.0.1:8008"])
def test_entrypoint_refuses_a_loopback_server_address(script: Path, host: str) -> None:
    """Before it installs or starts anything: the container would only ever reach itself."""
    env = {"PATH": os.environ["PATH"], "CLEARML_API_HOST": host, "CLEARML_FILES_HOST": "http://files:8081",
           "CLEARML_API_ACCESS_KEY": "k", "CLEARML_API_SECRET_KEY": "s"}  # fmt: skip
    run = subprocess.run(
        ["bash", str(script)], env=env, capture_output=True, text=True, timeout=30, check=False
    )
    assert run.returncode == 2 and "points at this container itself" in run.stderr, run.stderr


def test_agent_entrypoint_names_a_missing_variable() -> None:
    script = compose.DEPLOY / "agent" / "agent-entrypoint.sh"
    env = {"PATH": os.environ["PATH"], "CLEARML_API_HOST": "http://apiserver:8008"}
    run = subprocess.run(
        ["bash", str(script)], env=env, capture_output=True, text=True, timeout=30, check=False
    )
    assert run.returncode == 2 and "CLEARML_FILES_HOST is not set" in run.stderr, run.stderr


def test_the_inference_entrypoint_runs_the_copied_app() -> None:
    script = (compose.DEPLOY / "serving" / "inference-entrypoint.sh").read_text()
    (module,) = re.findall(r"uvicorn (\S+):app", script)
    assert (ROOT / (module.replace(".", "/") + ".py")).is_file()
    assert module.split(".")[0] in dockerfile_copies(compose.DEPLOY / "serving" / "Dockerfile")


def named_volumes(spec: dict[str, Any]) -> set[str]:
    """Named volumes a service mounts (`name:/path`), not bind mounts or anonymous volumes."""
    names = set()
    for volume in spec.get("volumes", []):
        if isinstance(volume, dict):
            source = volume.get("source", "") if volume.get("type", "volume") == "volume" else ""
        else:
            parts = volume.split(":")
            source = parts[0] if len(parts) >= 2 else ""
        if source and not source.startswith((".", "/", "~")):
            names.add(source)
    return names


@pytest.mark.parametrize("path", compose.COMPOSE_FILES, ids=lambda p: p.parent.name)
def test_references_between_services_networks_and_volumes_resolve(path: Path) -> None:
    """What `docker compose config` rejects and the schema cannot see: an unknown service in depends_on, an
    undeclared network or named volume (an extended service's volumes must be declared here too)."""
    document = compose.load(path)
    services = compose.merged_services(path)
    for name, spec in services.items():
        depends = spec.get("depends_on", [])
        assert set(depends) <= set(services), f"{name} depends on an unknown service"
        assert set(spec.get("networks", [])) <= set(document.get("networks", {})), (
            f"{name}: undeclared network"
        )
        assert named_volumes(spec) <= set(document.get("volumes", {})), f"{name}: undeclared volume"
    assert any(named_volumes(spec) for spec in services.values())


def test_interpolation_follows_compose() -> None:
    env = {"SET": "x", "EMPTY": ""}
    assert compose.interpolate("${SET:-d} ${EMPTY:-d} ${EMPTY-d} ${UNSET-d} $${SET}", env) == "x d  d ${SET}"
    assert compose.interpolate("${SET:+alt}|${EMPTY:+alt}|${EMPTY+alt}", env) == "alt||alt"
    with pytest.raises(KeyError, match="EMPTY"):
        compose.interpolate("${EMPTY:?needed}", env)
    assert compose.load(SERVING)["services"]["clearml-serving-inference"]["deploy"]["replicas"] == 1
