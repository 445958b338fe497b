"""Attaches an Evidently report (an HTML file) to a serving service's monitoring task with
asteroid/quality/report.py, and prints the task as JSON (last line).

    python drift_report_flow.py <report.html>
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from clearml import Task

from asteroid.quality import report, scalars

SERVICE = "drift report service"


def main() -> None:
    html = Path(sys.argv[1])
    service = Task.create(project_name="DevOps", task_name=SERVICE, task_type="service")
    controller = Task.create(
        project_name="DevOps", task_name=f"{SERVICE}{scalars.CONTROLLER_SUFFIX}", task_type="monitor"
    )
    made = report.DriftReport(html, live_rows=1, reference_rows=1, drifted_features=[], drift_share=0.0)
    report.attach(scalars.monitoring_task(service.id), made, "drift", iteration=1)
    print(json.dumps({"task": controller.id, "project": controller.project}))


if __name__ == "__main__":
    main()
