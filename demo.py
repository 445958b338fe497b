"""`make demo`: the whole job end to end on the embedded ClearML backend (or the configured server).

1. starts the embedded ClearML backend when no ClearML server is configured;
2. loads the asteroid table into the SQL database (NASA's table if present, else generated sample data);
3. runs the ClearML pipeline: get data → preprocessing → XGBoost × 3 seeds → best model published;
4. reads the published winner back from the server, as a serving system would.
"""

from __future__ import annotations

import sys

import global_config
import pipeline


def show_published_winner() -> None:
    from clearml import Model

    models = Model.query_models(
        project_name=global_config.PROJECT_NAME, tags=[global_config.WINNER_TAG], only_published=True
    )
    if not models:
        raise SystemExit("error: the pipeline finished but no published model carries the winner tag")
    model = models[0]
    print(f"published winner on the server: model {model.id} '{model.name}' at {model.url}")


def main() -> int:
    code = pipeline.main([])
    if code != 0:
        return code
    show_published_winner()
    print("\nNext: browse the server with the clearml SDK, e.g.")
    print("  from clearml import Task; Task.get_task(task_id='<id from runs/latest/summary.json>')")
    print("The embedded backend keeps running in the background; stop it with `make backend-stop`.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
