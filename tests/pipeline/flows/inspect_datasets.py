"""Prints, as JSON, the dataset versions of the project and the lineage of one preprocessed version."""

import json
import sys

from clearml import Dataset

import global_config

preprocessed_id = sys.argv[1]
listed = Dataset.list_datasets(dataset_project=global_config.PROJECT_NAME, only_completed=True)
child = Dataset.get(dataset_id=preprocessed_id)
print(
    json.dumps(
        {
            "versions": {d["id"]: d["name"] for d in listed},
            "graph": child.get_dependency_graph(),
            "files": sorted(child.list_files()),
        }
    )
)
