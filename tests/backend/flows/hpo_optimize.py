"""HyperParameterOptimizer with OptimizerOptuna over hpo_trial.py: ``local`` (start_locally) or ``queue Q``
(start, trials enqueued for an agent). Writes the optimizer's id, its trials and its top experiments as JSON
into the file named by its first argument."""

import json
import sys
from pathlib import Path

import optuna
from clearml import Task
from clearml.automation import HyperParameterOptimizer, UniformIntegerParameterRange
from clearml.automation.optuna import OptimizerOptuna

result_path, mode = sys.argv[1], sys.argv[2]
queue = sys.argv[3] if mode == "queue" else "default"
base = Task.create(
    project_name="automation",
    task_name=f"hpo base {mode}",
    script=str(Path(__file__).with_name("hpo_trial.py")),
    add_task_init_call=False,
    packages=False,
    force_single_script_file=True,
)
base.set_parameters({"General/x": 0, "General/hold": int(mode == "local")})
controller = Task.init(
    project_name="automation", task_name=f"optimizer {mode}", task_type=Task.TaskTypes.optimizer
)
optimizer = HyperParameterOptimizer(
    base_task_id=base.id,
    hyper_parameters=[UniformIntegerParameterRange("General/x", min_value=0, max_value=20)],
    objective_metric_title="loss",
    objective_metric_series="loss",
    objective_metric_sign="min",
    optimizer_class=OptimizerOptuna,
    # one at a time: Optuna's seeded draws are then reproducible (with concurrent trials a draw may repeat
    # an earlier one, and Optuna prunes it, leaving fewer trials than total_max_jobs)
    max_number_of_concurrent_tasks=1,
    execution_queue=queue,
    total_max_jobs=3,
    # a trial reaching iteration 2 is stopped; the optimizer's iteration budget is total_max_jobs times this,
    # so trials must not report past it, or they use up the budget of the last one
    max_iteration_per_job=2 if mode == "local" else None,
    pool_period_min=1 / 60,
    optuna_sampler=optuna.samplers.TPESampler(seed=1),
)
# the final report is written when the reporter wakes: every 5 minutes by default
optimizer.set_report_period(1 / 60)
started = optimizer.start_locally() if mode == "local" else optimizer.start()
assert started
optimizer.wait()
top = optimizer.get_top_experiments(top_k=3)
optimizer.stop()
trials = optimizer.optimizer.get_created_jobs_ids()
controller.close()
# into a file: trials run locally share this process's stdout and may print after it
result = {"optimizer": controller.id, "top": [t.id for t in top], "trials": sorted(trials)}
Path(result_path).write_text(json.dumps(result))
