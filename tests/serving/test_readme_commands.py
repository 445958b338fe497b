"""The README's commands that need a deployment or a running Alertmanager, run as the README writes them
(taken from README.md; only placeholders and the local addresses are replaced with this test's).

One deployment of this module's own (sample data, one seed, `serve.py`, the local stack without monitoring)
and one Alertmanager with the webhook receiver (tests/serving/test_monitoring_parts.py's fixture), each on
free ports and always stopped.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
import requests

import global_config
from asteroid.serving.hook_package import HOOK_FILES
from serving_local.config import StackConfig
from tests.backend.conftest import backend  # noqa: F401
from tests.code.test_readme import readme_command
from tests.serving.test_monitoring_parts import config, parts, wait_for_notification  # noqa: F401
from tests.serving.test_serving_e2e import Deployment, deployment  # noqa: F401

ROOT = global_config.ROOT
VENV_BIN = str(Path(sys.executable).parent)  # clearml-serving's console script
pytestmark = [pytest.mark.integration, pytest.mark.slow]


def shell(
    command: str, cwd: Path, env: dict[str, str], timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    completed = subprocess.run(
        ["bash", "-c", command],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert completed.returncode == 0, f"{command}\n{completed.stdout[-3000:]}\n{completed.stderr[-3000:]}"
    return completed


def deployment_env(deployment: Deployment) -> dict[str, str]:  # noqa: F811
    env = {**deployment.backend.env, **deployment.env}
    return {**env, "PATH": f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"}


def test_the_clearml_serving_cli_deploys_the_winner_as_make_serve_does(
    deployment: Deployment,  # noqa: F811
    tmp_path: Path,
) -> None:
    # README: mkdir asteroid_hook
    # README: cp asteroid/feature_rows.py
    # README: clearml-serving create
    # README: clearml-serving --id <service id> model add --engine xgboost --endpoint asteroid --version
    # README: clearml-serving --id <service id> metrics add
    # README: clearml-serving --id <service id> model canary
    # README: clearml-serving --id <service id> model list
    for source in HOOK_FILES.values():  # the files the README copies, where a checkout has them
        (tmp_path / source.relative_to(ROOT)).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, tmp_path / source.relative_to(ROOT))
    env = deployment_env(deployment)
    for prefix in ("mkdir asteroid_hook", "cp asteroid/feature_rows.py"):
        shell(readme_command(prefix), tmp_path, env)
    for name, source in HOOK_FILES.items():  # the folder make serve deploys
        assert (tmp_path / "asteroid_hook" / name).read_bytes() == source.read_bytes(), name

    created = shell(readme_command("clearml-serving create"), tmp_path, env).stdout
    assert "created: id=" in created, created
    service_id = created.split("created: id=")[-1].split()[0]
    model_id = deployment.summary["winner"]["model_id"]
    for prefix in ("model add --engine xgboost --endpoint asteroid --version", "metrics add", "model canary"):
        command = readme_command(f"clearml-serving --id <service id> {prefix}")
        shell(command.replace("<service id>", service_id).replace("<model id>", model_id), tmp_path, env)
    listing = shell(
        readme_command("clearml-serving --id <service id> model list").replace("<service id>", service_id),
        tmp_path,
        env,
    ).stdout
    assert model_id in listing and "asteroid/1" in listing, listing
    task = deployment.backend.call("tasks.get_by_id", {"task": service_id})["task"]
    assert "py_code_asteroid_1" in {artifact["key"] for artifact in task["execution"]["artifacts"]}


def test_the_curl_call_gets_a_prediction(deployment: Deployment) -> None:  # noqa: F811
    # README: curl -s -X POST http://127.0.0.1:8080/serve/asteroid
    command = readme_command("curl -s -X POST http://127.0.0.1:8080/serve/asteroid")
    command = command.replace("http://127.0.0.1:8080/serve", deployment.serve_url)
    answer = json.loads(shell(command, ROOT, deployment_env(deployment)).stdout)
    assert isinstance(answer["hazardous"], bool) and 0 <= answer["probability"] <= 1, answer
    assert answer["model"]["endpoint"] == "asteroid/1", answer


def test_the_inference_client_commands(deployment: Deployment) -> None:  # noqa: F811
    # README: .venv/bin/python inference.py  (all three, with the stack's address from its state file)
    for arguments in (
        "--count 200",
        "--batch 100 --count 50",
        "--drift --duration 10",
        "--format arrow --batch 1000 --count 20",
    ):
        result = shell(
            readme_command(f".venv/bin/python inference.py {arguments}"), ROOT, deployment_env(deployment)
        )
        assert "requests in" in result.stdout and "statuses {200:" in result.stdout.replace("'", ""), (
            result.stdout
        )


def readme_python_block(containing: str) -> str:
    """The README's one ```python block that contains this text."""
    blocks = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), re.DOTALL)
    found = [block for block in blocks if containing in block]
    assert len(found) == 1, f"{len(found)} python blocks of the README contain {containing!r}"
    return found[0]


def test_the_arrow_client_and_curl_call(deployment: Deployment, tmp_path: Path) -> None:  # noqa: F811
    # README: the five-line Python client of "Batches as Apache Arrow", on the sample rows
    csv = Path(deployment.env["ASTEROID_DATA_DIR"]) / "sample_asteroids.csv"
    client = readme_python_block("pyarrow.csv.read_csv")
    assert len(client.strip().splitlines()) == 5
    client = client.replace("data/nasa.csv", str(csv)).replace(
        "http://127.0.0.1:8080/serve", deployment.serve_url
    )
    names: dict[str, Any] = {}
    exec(compile(client, "README.md", "exec"), names)
    answer = names["answer"]
    assert answer.num_rows == 1000 and answer.column_names == ["request_id", "hazardous", "probability"]
    # README: curl -s http://127.0.0.1:8080/serve/asteroid --data-binary
    (tmp_path / "rows.arrows").write_bytes(names["body"].getvalue().to_pybytes())
    command = readme_command("curl -s http://127.0.0.1:8080/serve/asteroid --data-binary")
    shell(
        command.replace("http://127.0.0.1:8080/serve", deployment.serve_url),
        tmp_path,
        deployment_env(deployment),
    )
    table = pa.ipc.open_stream((tmp_path / "answer.arrows").read_bytes()).read_all()
    assert table.column("probability").to_pylist() == answer.column("probability").to_pylist()


def test_the_alerts_command_and_the_silences(parts: StackConfig) -> None:  # noqa: F811
    # README: .venv/bin/python -m serving_local alerts
    # README: amtool   (silence add, query, expire)
    # README: curl -s -X POST http://127.0.0.1:9093/api/v2/silences
    env = {**os.environ, "SERVING_LOCAL_DATA_DIR": str(parts.data_dir)}
    alert = {"labels": {"alertname": "AsteroidFeatureDrift", "feature": "absolute_magnitude"},
             "startsAt": datetime.now(UTC).isoformat()}  # fmt: skip
    assert (
        requests.post(f"{parts.alertmanager_url}/api/v2/alerts", json=[alert], timeout=5).status_code == 200
    )
    wait_for_notification(parts, "firing")
    listed = shell(readme_command(".venv/bin/python -m serving_local alerts"), ROOT, env).stdout
    assert "AsteroidFeatureDrift{feature=absolute_magnitude} firing" in listed, listed

    def local(command: str) -> str:
        return command.replace("http://127.0.0.1:9093", parts.alertmanager_url)

    silence_id = shell(
        local(readme_command("amtool --alertmanager.url=http://127.0.0.1:9093 silence add")), ROOT, env
    )
    silence_id = silence_id.stdout.strip()
    queried = shell(
        local(readme_command("amtool --alertmanager.url=http://127.0.0.1:9093 silence query")), ROOT, env
    )
    assert silence_id in queried.stdout, queried.stdout
    expire = readme_command("amtool --alertmanager.url=http://127.0.0.1:9093 silence expire")
    shell(local(expire).replace("<silence id>", silence_id), ROOT, env)

    posted = shell(local(readme_command("curl -s -X POST http://127.0.0.1:9093/api/v2/silences")), ROOT, env)
    api_id = json.loads(posted.stdout)["silenceID"]
    silences = requests.get(f"{parts.alertmanager_url}/api/v2/silences", timeout=5).json()
    states = {silence["id"]: silence["status"]["state"] for silence in silences}
    assert states == {silence_id: "expired", api_id: "active"}, states
