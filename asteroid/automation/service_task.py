"""The automation service as the script of a ClearML service task (see remote.py): run by an agent, it serves
with the agent's environment as its configuration and records its state on its task once it answers."""

import os
import sys

from asteroid.automation.config import AutomationConfig
from asteroid.automation.remote import record_state
from asteroid.automation.service import serve


def main() -> int:
    task_id = os.environ.get("CLEARML_TASK_ID", "")
    if not task_id:
        print("error: run by a clearml-agent (python -m asteroid.automation start --remote)", file=sys.stderr)
        return 2
    return serve(AutomationConfig.from_env(), announce=lambda state: record_state(task_id, state))


if __name__ == "__main__":
    sys.exit(main())
