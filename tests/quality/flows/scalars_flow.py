"""Reports the live quality figures of a database to a serving service's monitoring task with
asteroid/quality/scalars.py, then reads them back with the SDK and prints them as JSON (last line).

    python scalars_flow.py <database url> <now: unix seconds>

The service and its statistics controller's task are created as clearml-serving names them; a second
`monitor` task of another service must not be picked."""

from __future__ import annotations

import json
import sys

from clearml import Task

from asteroid.quality import scalars, store

SERVICE = "quality scalars service"


def main() -> None:
    database_url, now = sys.argv[1], float(sys.argv[2])
    service = Task.create(project_name="DevOps", task_name=SERVICE, task_type="service")
    controller = Task.create(
        project_name="DevOps", task_name=f"{SERVICE}{scalars.CONTROLLER_SUFFIX}", task_type="monitor"
    )
    Task.create(project_name="DevOps", task_name=f"other{scalars.CONTROLLER_SUFFIX}", task_type="monitor")
    picked = scalars.monitoring_task(service.id)
    reporter = scalars.ScalarReporter(picked.get_logger(), store.engine(database_url), 3600.0, lambda: now)
    reported = reporter.report()
    readback = Task.get_task(task_id=controller.id)
    print(
        json.dumps(
            {
                "controller": controller.id,
                "picked": picked.id,
                "reported": len(reported),
                "scalars": readback.get_reported_scalars(),
                "last": readback.get_last_scalar_metrics(),
            }
        )
    )


if __name__ == "__main__":
    main()
