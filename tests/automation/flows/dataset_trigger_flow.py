"""The automation's dataset trigger (ClearML's TriggerScheduler, unchanged) against a server: on a fresh
server, a new `raw_asteroid_dataset` version of the project is submitted once as a retrain event; a version of
another dataset of the project, or of a `raw_asteroid_dataset` of another project, is not; a second raw
version within the cooldown is suppressed. The launcher is a fake that records its calls. Writes the launches,
the decisions and the trigger's task id to the file its first argument names. (automation_common:
tests/backend/flows, on PYTHONPATH.)"""

import json
import sys
from pathlib import Path

from automation_common import console_of, wait_until
from clearml import Dataset

import global_config
from asteroid.automation import schedules, store
from asteroid.automation.config import AutomationConfig
from asteroid.automation.receiver import dataset_event
from asteroid.automation.retrain import Retrainer

result_path, workdir = Path(sys.argv[1]), Path.cwd()


class RecordingLauncher:
    def __init__(self) -> None:
        self.launches: list[str] = []

    def launch(self, token: str, query_date: str) -> str:
        self.launches.append(token)
        return token

    def started(self, token: str) -> str | None:
        return token if token in self.launches else None


def version(name: str, content: str, project: str = global_config.PROJECT_NAME) -> str:
    (workdir / "rows.csv").write_text(content)
    dataset = Dataset.create(dataset_project=project, dataset_name=name)
    dataset.add_files(str(workdir / "rows.csv"))
    dataset.upload()
    dataset.finalize()
    return str(dataset.id)


def polls(task_id: str) -> int:
    return console_of(task_id).count("Sleeping until the next pool")


# a fresh server: no dataset project exists yet when the trigger is added
config = AutomationConfig(data_dir=workdir / "automation", database_url=f"sqlite:///{workdir / 'd.db'}")
config = config.with_overrides(trigger_poll_minutes=2 / 60, cooldown_seconds=3600.0)
launcher = RecordingLauncher()
retrainer = Retrainer(store.engine(config.database_url), launcher, config.cooldown_seconds, poll_seconds=0.2)
retrainer.start_worker()
trigger = schedules.dataset_trigger(config, lambda d: retrainer.submit([dataset_event(d)]))
schedules.start_in_thread(trigger, "trigger")
trigger_id = wait_until(lambda: trigger._task and trigger._task.id, "the trigger's task")
wait_until(lambda: polls(trigger_id) >= 1, "the first poll")

new = version(global_config.RAW_DATASET_NAME, "a\n1\n")
other = version(global_config.PREPROCESSED_DATASET_NAME, "b\n1\n")
elsewhere = version(global_config.RAW_DATASET_NAME, "c\n1\n", project="another project")
wait_until(lambda: launcher.launches, "the launch")
seen = polls(trigger_id)
wait_until(lambda: polls(trigger_id) >= seen + 3, "three more polls")  # a second launch would come by now
within_cooldown = version(global_config.RAW_DATASET_NAME, "a\n2\n")
with store.engine(config.database_url).connect() as connection:
    wait_until(lambda: len(store.decisions(connection)) >= 2, "the second decision")
seen = polls(trigger_id)
wait_until(lambda: polls(trigger_id) >= seen + 3, "three more polls")
with store.engine(config.database_url).connect() as connection:
    decisions = [(d.event_key, d.decision) for d in store.decisions(connection)]
result_path.write_text(
    json.dumps(
        {
            "elsewhere": elsewhere,
            "new": new,
            "other": other,
            "within_cooldown": within_cooldown,
            "launches": launcher.launches,
            "decisions": decisions,
            "trigger": trigger_id,
        }
    )
)
