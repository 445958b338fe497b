"""One trial of the optimizer tests: reports loss = (x - 3)² + 1 / (iteration + 1) for iterations 0..2.

With ``General/hold`` set it then waits until the optimizer stops it (its ``max_iteration_per_job`` budget),
polling its own status with a deadline, and reports no further iteration."""

import time

from clearml import Task

HOLD_DEADLINE_S = 120.0
task = Task.init(project_name="automation", task_name="hpo trial")
params = task.connect({"x": 0, "hold": 0})
x = int(params["x"])
for iteration in range(3):
    loss = (x - 3) ** 2 + 1.0 / (iteration + 1)
    task.get_logger().report_scalar("loss", "loss", value=loss, iteration=iteration)
task.flush(wait_for_uploads=True)
if int(params["hold"]):
    deadline = time.monotonic() + HOLD_DEADLINE_S
    while task.get_status() != "stopped" and time.monotonic() < deadline:
        time.sleep(0.5)  # polling the task's own status, bounded by the deadline
    print(f"trial ended holding, status {task.get_status()}")
