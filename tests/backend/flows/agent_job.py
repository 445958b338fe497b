"""The job a clearml-agent runs in the agent test: it reports its (possibly overridden) parameter."""

from clearml import Task

task = Task.init(project_name="agent flow", task_name="agent job")
params = task.connect({"factor": 1})
print(f"agent job ran with factor={params['factor']}")
task.get_logger().report_scalar("result", "factor", value=float(params["factor"]), iteration=0)
