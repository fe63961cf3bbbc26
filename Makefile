# One-command entry points. `make report` and `make test` set everything up on first use.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PROFILE ?= auto
STAMP := $(VENV)/.installed-stamp
ARGS ?=
# test, test-fast, lint, lab and lab-check are `fer-study` commands (fer_helpers/orchestrate/cli.py), so that a machine
# without make (Windows) runs the same: `python -m fer_helpers test`, and so on.

.PHONY: setup report train campaign campaign-plan test test-fast lint bench lab lab-check book strip clean

$(STAMP): pyproject.toml requirements.lock
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c requirements.lock -e '.[dev]'
	$(PY) -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (fer-study)" >/dev/null
	touch $@

setup: $(STAMP)  ## create .venv and install the study with its pinned dependencies

report: setup  ## regenerate the report (PROFILE=auto|smoke|classroom|full)
	$(PY) -m fer_helpers report --profile $(PROFILE)

train: setup  ## train every model of a profile without Jupyter
	$(PY) -m fer_helpers train --profile $(PROFILE)

campaign: setup  ## train what the full profile lacks, in the background, committing each finished run (resumes)
	mkdir -p runs/full/logs
	nohup nice -n 19 $(PY) -m fer_helpers train --profile full --commit >> runs/full/logs/campaign.log 2>&1 &
	@echo "The campaign trains in the background: tail -f runs/full/logs/campaign.log; 'make campaign' again resumes it."

campaign-plan: setup  ## what the campaign still has to train, with each run's estimate on this machine
	$(PY) -m fer_helpers train --profile full --plan

test: setup  ## the linter and format check, then the whole test suite (real data from data/, FER2013_PATH, FERPLUS_PATH)
	$(PY) -m fer_helpers test $(ARGS)

test-fast: setup  ## the edit loop: leaves out the tests that train, run notebooks or need FER-2013
	$(PY) -m fer_helpers test --fast $(ARGS)

lint: setup  ## the linter and the formatter's check (ruff, configured in pyproject.toml); `ruff format .` fixes the latter
	$(PY) -m fer_helpers lint

bench: setup  ## measure load, HOG, training and inference speed; writes reports/benchmarks.json
	$(PY) benchmarks/run_all.py

lab: setup  ## open the notebooks in JupyterLab (ARGS="--port 8890 --no-browser" passes options; as root adds --allow-root)
	$(PY) -m fer_helpers lab $(ARGS)

lab-check: setup  ## run every notebook in JupyterLab in headless Chromium on synthetic faces (ARGS="--notebooks 01 03")
	$(PY) -m fer_helpers lab-check $(ARGS)

book: setup  ## the executed notebooks of a run folder and its REPORT.md as a website, checked in headless Chromium (PROFILE=...)
	$(PY) -m fer_helpers book runs/$(or $(PROFILE),classroom)
	$(PY) scripts/book_check.py runs/$(or $(PROFILE),classroom)

strip: setup  ## remove outputs from the source notebooks before committing
	$(VENV)/bin/nbstripout notebooks/*.ipynb

clean:  ## remove caches and run folders other than the committed full run
	rm -rf .pytest_cache runs/smoke* runs/classroom* runs/full-synthetic
