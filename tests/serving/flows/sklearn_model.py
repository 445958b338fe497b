"""A model of another kind, registered the way clearml-serving's own sklearn example registers it: a
scikit-learn model dumped with joblib inside a task, picked up by the SDK's joblib binding."""

from clearml import Task
from joblib import dump
from sklearn.datasets import make_blobs
from sklearn.linear_model import LogisticRegression

task = Task.init(project_name="serving examples", task_name="train sklearn model", output_uri=True)
features, labels = make_blobs(n_samples=100, centers=2, n_features=2, random_state=1)
dump(LogisticRegression().fit(features, labels), filename="sklearn-model.pkl", compress=9)
task.close()
