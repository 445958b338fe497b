"""Every command in the README's bash code blocks is either run by a test (or by `make demo`) or marked as
needing what this machine does not have.

A command line is marked with a trailing `# needs Docker`, `# needs a real ClearML server` or `# needs a
Kubernetes cluster`; every other one is listed in RUN_BY with the place that runs it, and that place's source
quotes it in a comment (`# README: <command>`), so a reader of either side finds the other. Tests that run
a README command with placeholders (`<service id>`) take the command from the README itself
(`readme_command`).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import global_config

# README: make test  (this test is part of `make test`; it passing means `make test` ran)

ROOT = global_config.ROOT
README = ROOT / "README.md"
MARKERS = ("# needs Docker", "# needs a real ClearML server", "# needs a Kubernetes cluster")
QUOTE = "# README: "
READMES = "tests/serving/test_readme_commands.py"

# command (as in the README, without its trailing comment) -> "path" or "path::function" that runs it
RUN_BY: dict[str, str] = {
    "make demo": "demo.py",
    "make test": "tests/code/test_readme.py",
    "NEO_SOURCE_CSV=/path/to/nasa.csv .venv/bin/python pipeline.py": (
        "tests/pipeline/test_pipeline.py::test_pipeline_on_nasa_table_meets_the_quality_bar"
    ),
    ".venv/bin/python pipeline.py": "tests/pipeline/test_pipeline.py::test_pipeline_on_generated_sample_data",
    ".venv/bin/python pipeline.py --queue default": (
        "tests/pipeline/test_pipeline.py::test_pipeline_steps_run_on_a_clearml_agent"
    ),
    "make serve": "tests/serving/test_serving_e2e.py::deployment",
    "export CLEARML_CONFIG_FILE=.clearml_local/clearml.conf": (
        "tests/pipeline/test_server_choice.py::test_pipeline_uses_the_configured_server"
    ),
    "export CLEARML_AGENT_SKIP_PYTHON_ENV_INSTALL=1": (
        "tests/pipeline/test_pipeline.py::test_pipeline_steps_run_on_a_clearml_agent"
    ),
    ".venv/bin/clearml-agent daemon --queue default --foreground --create-queue": (
        "tests/pipeline/test_pipeline.py::test_pipeline_steps_run_on_a_clearml_agent"
    ),
    **{
        f".venv/bin/python -m clearml_local {command}": (
            "tests/backend/test_persistence.py::test_start_status_stop_manage_a_background_server"
        )
        for command in ("start", "status", "stop")
    },
    ".venv/bin/python -m clearml_local serve --api-port 8008 --files-port 8081 --data-dir .clearml_local": (
        "tests/backend/test_persistence.py::serving"
    ),
    "clearml-serving --id <service id> model add --engine xgboost --endpoint asteroid_example --preprocess "
    'preprocess_serving.py --project "Asteroid Hazard" --name asteroid-xgboost --tags pipeline_winner '
    "--published": "tests/serving/test_serving_e2e.py::test_the_example_single_file_hook_command_still_works",
    ".venv/bin/python tune.py --trials 20": "tests/pipeline/test_tuning.py::local_run",
    ".venv/bin/python tune.py --queue default": (
        "tests/pipeline/test_tuning.py::test_trials_run_on_a_clearml_agent"
    ),
    ".venv/bin/python pipeline.py --params-from <optimizer task id>": (
        "tests/pipeline/test_tuning.py::test_the_pipeline_trains_with_the_recommended_parameters"
    ),
    ".venv/bin/python -m asteroid.monitoring.deploy_files --target kubernetes "
    "--rules-dir deploy/prometheus/rules": (
        "tests/deploy/test_kubernetes_monitoring.py::test_the_readme_command_writes_the_rules_configmap"
    ),
    ".venv/bin/python -m asteroid.quality consume --metrics-port 9108": (
        "tests/quality/test_feedback.py::test_acknowledged_labels_survive_a_consumer_kill_9"
    ),
    "curl -s -X POST http://127.0.0.1:8080/feedback/asteroid -H 'Content-Type: application/json' -d "
    '\'{"request_id": "<request_id of an answer>", "hazardous": true}\'': (
        "tests/quality/test_feedback.py::test_labels_are_joined_to_their_predictions"
    ),
    ".venv/bin/python -m asteroid.quality import labels.csv": (
        "tests/quality/test_feedback.py::test_catalogue_labels_by_neo_reference_id_and_date"
    ),
    ".venv/bin/python -m asteroid.quality count": (
        "tests/quality/test_feedback.py::test_catalogue_labels_by_neo_reference_id_and_date"
    ),
    **{
        f".venv/bin/python -m asteroid.automation {command}": (
            "tests/automation/test_service.py::test_start_status_audit_and_stop"
        )
        for command in ("start", "status", "audit", "stop")
    },
    ".venv/bin/python -m asteroid.automation start --remote": (
        "tests/automation/test_remote.py::test_the_service_runs_as_a_task_on_the_services_queue"
    ),
    ".venv/bin/python -m asteroid.rollout gate": (
        "tests/rollout/test_rollout_e2e.py::test_a_model_trained_on_shuffled_labels_is_refused_and_never_served"
    ),
    ".venv/bin/python pipeline.py --inject-fault shuffled_labels": (
        "tests/rollout/test_rollout_e2e.py::test_a_model_trained_on_shuffled_labels_is_refused_and_never_served"
    ),
    **{
        f".venv/bin/python -m asteroid.rollout {command}": "tests/rollout/test_rollout_e2e.py::"
        "test_a_healthy_challenger_is_promoted_under_traffic_through_a_kill_9_without_a_failed_request"
        for command in ("start --profile drill", "status", "resume")
    },
    ".venv/bin/python -m asteroid.rollout rollback": (
        "tests/rollout/test_cli.py::test_a_rollback_by_hand_without_a_controller_is_made_at_once"
    ),
    ".venv/bin/python pipeline.py --inject-fault serving:error_rate=0.3": (
        "tests/rollout/test_rollout_e2e.py::"
        "test_a_challenger_failing_requests_when_served_is_rolled_back_and_the_alert_delivered"
    ),
    "make serve-status": "tests/serving/test_stack.py::test_status_and_stop_of_a_stack_that_does_not_run",
    "make serve-stop": "tests/serving/test_stack.py::test_status_and_stop_of_a_stack_that_does_not_run",
}
# Commands of the README that tests/serving/test_readme_commands.py runs, found there by their beginning.
RUN_IN_READMES = {
    "mkdir asteroid_hook": "test_the_clearml_serving_cli_deploys_the_winner_as_make_serve_does",
    "cp asteroid/feature_rows.py": "test_the_clearml_serving_cli_deploys_the_winner_as_make_serve_does",
    "clearml-serving create": "test_the_clearml_serving_cli_deploys_the_winner_as_make_serve_does",
    "clearml-serving --id <service id> model add --engine xgboost --endpoint asteroid --version": (
        "test_the_clearml_serving_cli_deploys_the_winner_as_make_serve_does"
    ),
    "clearml-serving --id <service id> metrics add": (
        "test_the_clearml_serving_cli_deploys_the_winner_as_make_serve_does"
    ),
    "clearml-serving --id <service id> model canary": (
        "test_the_clearml_serving_cli_deploys_the_winner_as_make_serve_does"
    ),
    "clearml-serving --id <service id> model list": (
        "test_the_clearml_serving_cli_deploys_the_winner_as_make_serve_does"
    ),
    "curl -s -X POST http://127.0.0.1:8080/serve/asteroid": "test_the_curl_call_gets_a_prediction",
    "curl -s http://127.0.0.1:8080/serve/asteroid --data-binary": "test_the_arrow_client_and_curl_call",
    ".venv/bin/python inference.py": "test_the_inference_client_commands",
    ".venv/bin/python -m serving_local alerts": "test_the_alerts_command_and_the_silences",
    "amtool ": "test_the_alerts_command_and_the_silences",
    "curl -s -X POST http://127.0.0.1:9093/api/v2/silences": "test_the_alerts_command_and_the_silences",
}


def bash_blocks(text: str) -> list[str]:
    return re.findall(r"^```bash\n(.*?)^```", text, flags=re.S | re.M)


def command_lines(block: str) -> list[str]:
    """The block's command lines (continuations joined); comment-only lines are output or explanation."""
    joined = re.sub(r"\\\n\s*", "", block)
    return [
        line.strip() for line in joined.splitlines() if line.strip() and not line.lstrip().startswith("#")
    ]


def without_comment(line: str) -> str:
    """The command of a line, without a trailing `` # ...`` comment (a ``#`` inside quotes stays)."""
    quote = ""
    for index, char in enumerate(line):
        if quote:
            quote = "" if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == "#" and index and line[index - 1].isspace():
            return line[:index].strip()
    return line.strip()


def readme_commands() -> list[tuple[str, str]]:
    """(command, whole line) of every command line in the README's bash blocks."""
    lines = [line for block in bash_blocks(README.read_text()) for line in command_lines(block)]
    return [(without_comment(line), line) for line in lines]


def readme_command(prefix: str) -> str:
    """The one README command starting with ``prefix`` (for tests that run it)."""
    found = [command for command, _ in readme_commands() if command.startswith(prefix)]
    assert len(found) == 1, f"{len(found)} README commands start with {prefix!r}"
    return found[0]


def runner_of(command: str) -> tuple[str, str] | None:
    """("path[::function]" that runs the command, the text its source quotes), or None."""
    if command in RUN_BY:
        return RUN_BY[command], command
    for prefix, function in RUN_IN_READMES.items():
        if command.startswith(prefix):
            return f"{READMES}::{function}", prefix  # it takes the command from the README by this prefix
    return None


def test_every_readme_command_is_marked_or_run_by_a_named_test() -> None:
    unaccounted = [
        line
        for command, line in readme_commands()
        if not any(marker in line for marker in MARKERS) and runner_of(command) is None
    ]
    assert not unaccounted, "README commands neither marked nor run by a test:\n" + "\n".join(unaccounted)


def test_the_table_names_only_commands_the_readme_has() -> None:
    commands = {command for command, _ in readme_commands()}
    assert not set(RUN_BY) - commands
    assert all(any(c.startswith(prefix) for c in commands) for prefix in RUN_IN_READMES)


def defines(path: Path, name: str) -> bool:
    tree = ast.parse(path.read_text())
    functions = (ast.FunctionDef, ast.AsyncFunctionDef)
    return any(isinstance(node, functions) and node.name == name for node in ast.walk(tree))


def test_every_runner_exists_and_quotes_the_command() -> None:
    problems = []
    for command, line in readme_commands():
        runner = runner_of(command)
        if runner is None or any(marker in line for marker in MARKERS):
            continue
        location, quoted = runner
        path_text, _, function = location.partition("::")
        path = ROOT / path_text
        if not path.is_file() or (function and not defines(path, function)):
            problems.append(f"{location} does not exist (for {command!r})")
        elif f"{QUOTE}{quoted}" not in path.read_text():
            problems.append(f"{path_text} has no comment {QUOTE}{quoted}")
    assert not problems, "\n".join(problems)


def test_the_extraction_handles_comments_quotes_and_continuations() -> None:
    block = "a --x 1   # note\n# output line\nb 'it # stays' \\\n  --y\n\n"
    assert [without_comment(line) for line in command_lines(block)] == ["a --x 1", "b 'it # stays' --y"]
