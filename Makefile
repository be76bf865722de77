# xaicli: `make demo` and `make test` work on a fresh machine with Python 3.11+.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench bench-quick models clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[test,demo]"
	touch $(STAMP)

# the benchmarks' peers (woodelf-explainer): never part of the runtime or test install
$(VENV)/.bench: $(STAMP)
	$(BIN)/python -m pip install --quiet -e ".[test,demo,bench]"
	touch $@

sample_data/models/.built: $(STAMP) sample_data/train_models.py
	$(BIN)/python sample_data/train_models.py sample_data/models
	touch $@

models: sample_data/models/.built

demo: sample_data/models/.built
	$(BIN)/xai explain --model sample_data/models/penguins.joblib \
		--data sample_data/penguins.parquet --id-col customer_id \
		--out sample_data/penguins.attributions.parquet --overwrite
	@echo "first rows of sample_data/penguins.attributions.parquet:"
	@$(BIN)/python -c "import pandas as pd; pd.set_option('display.width', 200); print(pd.read_parquet('sample_data/penguins.attributions.parquet').head(6).to_string(index=False))"
	$(BIN)/xai report sample_data/penguins.attributions.parquet --data sample_data/penguins.parquet \
		--out sample_data/penguins.report.html --overwrite --quiet
	@echo "report (opens offline in a browser): sample_data/penguins.report.html"

test: sample_data/models/.built
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check xaicli tests benchmarks
	$(BIN)/ruff format --check xaicli tests benchmarks
	$(BIN)/mypy

bench: sample_data/models/.built $(VENV)/.bench
	$(BIN)/python -m benchmarks.run

bench-quick: sample_data/models/.built $(VENV)/.bench
	$(BIN)/python -m benchmarks.run --quick

clean:
	rm -rf $(VENV) sample_data/models sample_data/*.attributions.* sample_data/*.report.html .pytest_cache
