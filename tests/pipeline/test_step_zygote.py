"""A step forked by the zygote runs its script as ``python script.py`` would: its arguments, working
directory, environment (the task id the SDK reads included), exit code and signals; and with the zygote gone,
local steps still start, as new interpreters."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from asteroid.step_zygote import ForkedStep, StepZygote, step_launcher

ROOT = Path(__file__).resolve().parents[2]

REPORTING_SCRIPT = """
import json, os, sys
from clearml.config import get_remote_task_id
with open(os.environ["REPORT_TO"], "w") as out:
    json.dump({"argv": sys.argv, "cwd": os.getcwd(), "name": __name__, "task_id": get_remote_task_id(),
               "path0": sys.path[0], "value": os.environ.get("STEP_VALUE"), "ppid": os.getppid()}, out)
sys.exit(int(os.environ.get("EXIT_CODE", "0")))
"""


@pytest.fixture
def zygote() -> Iterator[StepZygote]:
    started = StepZygote.start(str(ROOT))
    try:
        yield started
    finally:
        started.close()


def write_script(folder: Path, text: str) -> Path:
    script = folder / "step_script.py"
    script.write_text(text)
    return script


def step_env(**values: str) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), **values}


def launch(zygote: StepZygote, script: Path, cwd: Path, env: dict[str, str]) -> ForkedStep:
    step = zygote.launch([sys.executable, str(script)], str(cwd), env)
    assert step is not None
    return step


def test_a_forked_step_runs_its_script_as_main_with_its_own_arguments_folder_and_environment(
    zygote: StepZygote, tmp_path: Path
) -> None:
    script = write_script(tmp_path, REPORTING_SCRIPT)
    report = tmp_path / "report.json"
    work = tmp_path / "work"
    work.mkdir()
    env = step_env(REPORT_TO=str(report), STEP_VALUE="seven", CLEARML_TASK_ID="task-of-the-step")
    step = launch(zygote, script, work, env)
    assert step.wait(timeout=60) == 0
    seen = json.loads(report.read_text())
    assert seen["argv"] == [str(script)]
    assert seen["cwd"] == str(work)
    assert seen["name"] == "__main__"
    assert seen["path0"] == str(tmp_path)
    assert seen["value"] == "seven"
    # clearml was imported by the zygote before the step's environment existed
    assert seen["task_id"] == "task-of-the-step"
    assert seen["ppid"] != os.getpid()  # a child of the zygote, not a new process of this one


def test_each_step_gets_a_fresh_environment_and_its_own_exit_code(zygote: StepZygote, tmp_path: Path) -> None:
    script = write_script(tmp_path, REPORTING_SCRIPT)
    first = launch(zygote, script, tmp_path, step_env(REPORT_TO=str(tmp_path / "1.json"), EXIT_CODE="3"))
    assert first.wait(timeout=60) == 3
    second = launch(zygote, script, tmp_path, step_env(REPORT_TO=str(tmp_path / "2.json")))
    assert second.wait(timeout=60) == 0
    assert first.pid != second.pid
    assert json.loads((tmp_path / "2.json").read_text())["value"] is None


def test_an_uncaught_exception_ends_the_step_with_exit_code_1(zygote: StepZygote, tmp_path: Path) -> None:
    script = write_script(tmp_path, "raise RuntimeError('step broke')\n")
    assert launch(zygote, script, tmp_path, step_env()).wait(timeout=60) == 1


def test_a_running_step_can_be_waited_on_without_blocking_and_stopped_by_a_signal(
    zygote: StepZygote, tmp_path: Path
) -> None:
    script = write_script(tmp_path, "import time\ntime.sleep(60)\n")
    step = launch(zygote, script, tmp_path, step_env())
    with pytest.raises(subprocess.TimeoutExpired):
        step.wait(timeout=0)
    assert step.poll() is None
    step.terminate()
    assert step.wait(timeout=30) == -signal.SIGTERM


def test_with_the_zygote_gone_a_step_starts_as_a_new_interpreter(tmp_path: Path) -> None:
    zygote = StepZygote.start(str(ROOT))
    zygote.close()
    script = write_script(tmp_path, REPORTING_SCRIPT)
    report = tmp_path / "report.json"
    process = step_launcher(zygote)(
        [sys.executable, str(script)], str(tmp_path), step_env(REPORT_TO=str(report))
    )
    assert isinstance(process, subprocess.Popen)
    assert process.wait(timeout=60) == 0
    assert json.loads(report.read_text())["ppid"] == os.getpid()


def test_the_zygote_ends_by_itself_when_the_controller_closes_it(tmp_path: Path) -> None:
    zygote = StepZygote.start(str(ROOT))
    zygote.close()
    assert zygote.process.returncode == 0  # not killed after close's grace
    assert zygote.launch([sys.executable, "-c", "pass"], str(tmp_path), step_env()) is None


# --- a zygote forked from the controller -----------------------------------------------------------------

FORKING_CONTROLLER = """
import json, os, sys, types
# a module of the controller's, made before the fork: the steps find it loaded
sys.modules["made_by_the_controller"] = types.ModuleType("made_by_the_controller")
from asteroid.step_zygote import StepZygote
zygote = StepZygote.fork()
assert zygote is not None and zygote.process.pid != os.getpid()
codes = []
for script, code in zip(sys.argv[1:], ("0", "5", "0")):
    env = {**os.environ, "EXIT_CODE": code, "CLEARML_TASK_ID": "forked-step", "REPORT_TO": script + ".json"}
    codes.append(zygote.launch([sys.executable, script], os.path.dirname(script), env).wait(60))
zygote.close()
print(json.dumps({"codes": codes, "zygote_exit": zygote.process.returncode}))
"""

FORKED_STEP_SCRIPT = """
import atexit, json, os, sys
from clearml.config import get_remote_task_id
shared = "made_by_the_controller" in sys.modules
report = {"task_id": get_remote_task_id(), "shared": shared, "name": __name__}
atexit.register(lambda: open(os.environ["REPORT_TO"], "w").write(json.dumps(report)))
if os.environ.get("RAISE"):
    raise RuntimeError("step broke")
sys.exit(int(os.environ["EXIT_CODE"]))
"""


def test_a_zygote_forked_from_the_controller_runs_steps_that_end_as_a_new_interpreter_would(
    tmp_path: Path,
) -> None:
    scripts = []
    for name, text in (
        ("ok", FORKED_STEP_SCRIPT),
        ("code", FORKED_STEP_SCRIPT),
        ("raises", FORKED_STEP_SCRIPT),
    ):
        script = tmp_path / f"{name}.py"
        script.write_text(("import os\nos.environ['RAISE'] = '1'\n" if name == "raises" else "") + text)
        scripts.append(str(script))
    done = subprocess.run(
        [sys.executable, "-c", FORKING_CONTROLLER, *scripts],
        cwd=ROOT,
        env=step_env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    # exit code 0, sys.exit's 5, and 1 for an uncaught exception (printed to stderr, as an interpreter does)
    assert result == {"codes": [0, 5, 1], "zygote_exit": 0}
    assert "RuntimeError: step broke" in done.stderr
    for script in scripts:  # atexit callbacks ran, whatever the ending
        report = json.loads(Path(script + ".json").read_text())
        assert report == {"task_id": "forked-step", "shared": True, "name": "__main__"}
