"""The hook loads as clearml-serving loads a single `--preprocess` file: from a spec, never registered in
`sys.modules` (clearml_serving/serving/preprocess_service.py) — where a `dataclass` of the file fails."""

from __future__ import annotations

import importlib.util
import sys

import global_config


def test_the_hook_file_loads_without_being_a_registered_module() -> None:
    spec = importlib.util.spec_from_file_location(
        "py_code_asteroid_example", global_config.ROOT / "preprocess_serving.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert "py_code_asteroid_example" not in sys.modules
    assert callable(module.Preprocess().preprocess)
