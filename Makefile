# vae_keras: `make demo` trains on the embedded data and opens the dashboard; `make test` runs the tests.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PORT ?= 8501

.PHONY: help setup system-deps demo train dashboard test demo-models benchmark lint clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: requirements.txt setup.py | $(BIN)/python
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements.txt
	$(BIN)/pip install --quiet --no-deps -e .
	touch $@

setup: $(VENV)/.installed  ## create .venv with the pinned requirements and vae_keras (editable)

system-deps:  ## Debian packages: chromium (browser test), dataset-fashion-mnist (benchmarks)
	scripts/install-system-deps.sh

train: setup  ## train a VAE on the embedded mnist-10k and export it to saved_models/mnist-10k/N
	$(BIN)/vae-keras train --dataset mnist-10k --epochs 10

dashboard: setup  ## open the dashboard on the models in saved_models/
	$(BIN)/streamlit run dashboard/app.py --server.port $(PORT) --server.address localhost --browser.gatherUsageStats false

demo: train dashboard  ## the main job: train on mnist-10k, then open the dashboard

test: setup system-deps  ## every test (CI runs this)
	$(BIN)/python -m pytest

demo-models: setup  ## re-create the small demo models committed in saved_models/
	rm -rf saved_models/mnist-demo saved_models/mnist-2d
	$(BIN)/vae-keras train --dataset mnist-10k --epochs 20 --hidden 256,128 --latent-dim 16 --prior standard --name mnist-demo
	$(BIN)/vae-keras train --dataset mnist-10k --epochs 20 --hidden 256,128 --latent-dim 2 --prior standard --name mnist-2d

benchmark: setup system-deps  ## issue-4 benchmark: default model vs classic baselines (about an hour)
	$(BIN)/python -m benchmarks.run

lint:  ## static checks
	$(BIN)/python -m ruff check vae_keras dashboard tests benchmarks

clean:  ## remove caches (keeps .venv and saved_models)
	rm -rf .pytest_cache .hypothesis test-artifacts build *.egg-info
