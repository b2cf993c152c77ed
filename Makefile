# Every target sets itself up: on a fresh machine `make notes` and `make test` just work.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# THEME, PARAMS and JOBS reach the program as environment variables holding the text exactly
# as typed (never expanded by make, never read by a shell); Python validates them.
override THEME := $(value THEME)
override PARAMS := $(value PARAMS)
override JOBS := $(value JOBS)
export THEME PARAMS JOBS

.PHONY: setup test notes note lab bench check clean reference hooks

setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@echo "Installing the project and its pinned dependencies into $(VENV) (a few minutes the first time)..."
	$(PY) -m pip install --progress-bar off --disable-pip-version-check -c constraints.txt -e '.[dev]'
	$(PY) -m ipykernel install --sys-prefix --name metaanalysis --display-name "Python (metaanalysis)" >/dev/null
	@# the lab wraps long lines, so a note's prose cells read as paragraphs (docs/notes.md)
	@mkdir -p $(VENV)/share/jupyter/lab/settings && cp scripts/jupyterlab-overrides.json $(VENV)/share/jupyter/lab/settings/overrides.json
	@$(MAKE) --no-print-directory hooks
	@touch $(STAMP)

# Notebooks are committed without outputs: a git filter (nbstripout) strips them at commit
# time, so saving from the lab never bloats history or breaks a test (.gitattributes).
hooks:
	@if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then \
	  $(VENV)/bin/nbstripout --install && \
	  git config filter.nbstripout.clean "'$(abspath $(VENV))/bin/python' -m nbstripout --keep-id" && \
	  echo "git filter installed: notebook outputs are stripped when you commit" && \
	  echo "refreshing git's index through the filter (once, a few seconds)..." && \
	  (git update-index -q --refresh >/dev/null 2>&1 || true); fi

test: setup
	$(PY) -m pytest -q

notes: setup
	$(VENV)/bin/metaanalysis render --from-make notes

note: setup
	$(VENV)/bin/metaanalysis render --from-make note

check: setup
	$(VENV)/bin/metaanalysis check bibliographies/*.bib

# JupyterLab on the project (bibliographies/ and themes.json one click away), opened on notebooks/
lab: setup
	@# the lab's settings as the project keeps them (also after a change to them)
	@mkdir -p $(VENV)/share/jupyter/lab/settings && cp scripts/jupyterlab-overrides.json $(VENV)/share/jupyter/lab/settings/overrides.json
	$(VENV)/bin/jupyter lab --ServerApp.root_dir=. --ServerApp.default_url=/lab/tree/notebooks $(if $(filter 0,$(shell id -u)),--allow-root)

# one BLAS thread: the targets are per core, and side-by-side ratios need a quiet second core
bench: setup
	OPENBLAS_NUM_THREADS=1 $(PY) benchmarks/run.py

# Regenerates the metafor fixtures in tests/reference/ (needs R; see tests/reference/README.md).
reference:
	Rscript tests/reference/make_reference.R

clean:
	rm -rf $(VENV) site .pytest_cache
