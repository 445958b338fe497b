"""The quality exporter reaches the local stack's Prometheus through serving_local's generic application
targets: a targets file per exporter, in the directory the generated prometheus.yml watches."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from serving_local import monitoring
from serving_local.api import APPLICATION_JOB, StackConfig, StackError


def test_an_application_target_is_a_file_the_generated_configuration_watches(tmp_path: Path) -> None:
    config = StackConfig.from_env().with_overrides(data_dir=tmp_path)
    document = json.loads(monitoring.prometheus_config(config).split("\n", 1)[1])
    jobs = {job["job_name"]: job for job in document["scrape_configs"]}
    (watched,) = jobs[APPLICATION_JOB]["file_sd_configs"][0]["files"]
    path = monitoring.write_application_target(config, "asteroid-quality", "127.0.0.1:9123")
    assert path.parent == Path(watched).parent and path.match(Path(watched).name)
    assert json.loads(path.read_text()) == [
        {"targets": ["127.0.0.1:9123"], "labels": {"exporter": "asteroid-quality"}}
    ]
    monitoring.remove_application_target(config, "asteroid-quality")
    assert not path.exists()
    with pytest.raises(StackError, match="letters, digits"):
        monitoring.write_application_target(config, "../escape", "127.0.0.1:1")
