# Two commands matter on a fresh machine: `make demo` and `make test` (they run `make setup` themselves).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: setup test demo tune bench lint format serve serve-stop serve-status backend-start backend-stop backend-status clean

setup: $(STAMP)

$(STAMP): requirements.txt requirements-nodeps.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps -r requirements-nodeps.txt
	$(PY) -m pip install --quiet --no-deps -e .
	./.ci/install-prometheus
	touch $(STAMP)

test: setup
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m pytest -q -rs

demo: setup
	$(PY) demo.py

# a hyperparameter search over the training step (needs a pipeline run first); e.g. make tune ARGS="--trials 40"
tune: setup
	$(PY) tune.py $(ARGS)

bench: setup
	$(PY) benchmarks/backend_bench.py
	$(PY) benchmarks/pipeline_bench.py --sizes 4687,100000,1000000
	$(PY) benchmarks/model_bench.py
	$(PY) benchmarks/serving_bench.py

lint: setup
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

format: setup
	$(PY) -m ruff format .
	$(PY) -m ruff check --fix .

serve: setup
	$(PY) serve.py

serve-stop: setup
	$(PY) -m serving_local stop

serve-status: setup
	$(PY) -m serving_local status

backend-start: setup
	$(PY) -m clearml_local start

backend-stop: setup
	$(PY) -m clearml_local stop

backend-status: setup
	$(PY) -m clearml_local status

clean:
	-$(PY) -m serving_local stop
	-$(PY) -m clearml_local stop
	rm -rf .clearml_local .serving_local runs data/*.db data/sample_asteroids.csv
