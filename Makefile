# robustbook: two commands do everything on a fresh machine.
#   make book   execute every chapter with papermill at the `ci` profile, then build the HTML
#               book with jupyter-book (warnings are errors). The HTML lands in _build/html.
#   make test   ruff (make lint), unit tests, plus every chapter executed under nbval at the `smoke` profile and at
#               `colab-smoke` and `full-smoke` (the colab and full code paths at smoke sizes).
#   make browser  after make book: open every page of the built book in headless Chromium and check
#               it as a reader sees it (tests/browser_check.py); screenshots land in _build/screenshots.
#               Installs Chromium (Debian's package) and a MathJax copy first, via .ci/install-browser.
#   make bench  the performance benchmarks (P1 PGD throughput, P3 time to robustness, scaling, and
#               headline: chapter 2's Madry-strength MNIST model, whose record the ci build reads);
#               records land in book/perf/, which the performance appendix shows. BENCH="p1" picks one.
#   make gpu-check  on a GPU machine: the device tests, P1 and P3 on CUDA and chapter 2 timed at the
#               colab profile, in at most 8 minutes on an H100/H200; writes book/perf/*-cuda.json.
#               On a lent machine without network, run `make gpu-bundle` here first and carry .gpu/
#               (wheels and data, about 30 MiB); GPU_CHECK="--device cpu --quick --out DIR" checks it on a CPU.
# Both first create the virtualenv .venv and install the project into it when needed.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
BUILD := _build
PROFILE ?= ci
NOTEBOOKS := $(sort $(wildcard notebooks/*.ipynb))
# The chapters run in a kernel of this virtualenv, registered under its own name so that no
# other "python3" kernel on the machine is picked up instead.
KERNEL := robustbook

export ROBUSTUTILS_DATA ?= $(CURDIR)/data
export ROBUSTUTILS_CACHE ?= $(CURDIR)/.cache/robustutils
# Every package make installs, at exact versions (one lock for Linux, macOS and Windows, Python
# 3.11+): the book a reader rebuilds is the book CI built. `make lock` refreshes both files.
LOCK := .ci/requirements.lock
# torchattacks, installed with --no-deps (its metadata pins a requests that Sphinx refuses).
LOCK_NODEPS := .ci/requirements-nodeps.lock
UV := uv==0.13.9
PIP := pip==26.3

BENCH ?=

# The browser check serves MathJax from here in place of its CDN (the machine is offline).
BROWSER_CACHE := .cache/browser

.PHONY: install lock book chapters html test lint browser bench gpu-bundle gpu-check clean

# --isolated and PIP_CONFIG_FILE=/dev/null: no pip configuration of the machine applies (a
# machine-wide folder of CPU-only torch wheels breaks torchvision, and a machine-wide constraint
# file would cap torch below the lock): the lock alone says what is installed.
# --no-deps: the lock already lists every dependency, so nothing outside it is resolved.
$(BIN)/.installed: pyproject.toml Makefile $(LOCK) $(LOCK_NODEPS)
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "the lock is made for Python 3.11+; this is " + sys.version.split()[0] + ": run make PYTHON=python3.11")'
	$(PYTHON) -m venv $(VENV)
	PIP_CONFIG_FILE=/dev/null $(BIN)/python -m pip --isolated install --quiet "$(PIP)"
	PIP_CONFIG_FILE=/dev/null $(BIN)/python -m pip --isolated install --quiet --no-deps -r $(LOCK) -r $(LOCK_NODEPS)
	PIP_CONFIG_FILE=/dev/null $(BIN)/python -m pip --isolated install --quiet --no-deps --no-build-isolation -e .
	$(BIN)/python -m ipykernel install --sys-prefix --name $(KERNEL) --display-name "Python 3 (robustbook)"
	touch $@

install: $(BIN)/.installed

# Refresh the lock to the newest versions that pyproject.toml's ranges allow; commit the result,
# and its CI run shows whether the book still builds with them.
lock:
	$(PYTHON) -m venv $(BUILD)/lock-venv
	PIP_CONFIG_FILE=/dev/null $(BUILD)/lock-venv/bin/python -m pip --isolated install --quiet "$(UV)"
	$(BUILD)/lock-venv/bin/uv pip compile pyproject.toml --extra book --extra test --extra browser --extra published \
	  --universal --fork-strategy fewest --python-version 3.11 --upgrade --quiet \
	  --custom-compile-command "make lock" -o $(LOCK)
	$(BUILD)/lock-venv/bin/uv pip compile .ci/requirements-nodeps.in --no-deps \
	  --universal --python-version 3.11 --upgrade --quiet --custom-compile-command "make lock" -o $(LOCK_NODEPS)
	@grep -E '^(torch|torchvision|numpy|jupyter-book|papermill|nbval|torchattacks)==' $(LOCK) $(LOCK_NODEPS)

book: chapters html

# Execute each chapter into a staging copy of the book, so notebooks/ never gains outputs. Progress
# bars are for a terminal: TQDM_DISABLE keeps them out of the outputs the book renders.
chapters: install
	rm -rf $(BUILD)/src && mkdir -p $(BUILD)/src/notebooks
	cp -r _config.yml _toc.yml book $(BUILD)/src/
	# The chapters show the library's own code (literalinclude /robustutils/...): the source that ran.
	cp -r robustutils $(BUILD)/src/ && rm -rf $(BUILD)/src/robustutils/__pycache__
	@for nb in $(NOTEBOOKS); do \
	  echo "== $$nb (profile $(PROFILE))"; \
	  start=$$(date +%s); \
	  TQDM_DISABLE=1 $(BIN)/papermill --no-progress-bar -k $(KERNEL) $$nb $(BUILD)/src/$$nb -p PROFILE $(PROFILE) \
	    || { echo "== $$nb failed: the executed copy, error included, is $(BUILD)/src/$$nb"; exit 1; }; \
	  echo "== $$nb took $$(( $$(date +%s) - start )) s"; \
	done

html: install
	rm -rf $(BUILD)/html $(BUILD)/.doctrees $(BUILD)/jupyter_execute
	$(BIN)/jupyter-book build $(BUILD)/src --path-output . --warningiserror --nitpick --keep-going
	@echo "The book is at $(CURDIR)/$(BUILD)/html/index.html"

# The chapters run at `smoke` and also at `colab-smoke` and `full-smoke`: the architectures, datasets
# and branches of the colab and full profiles at smoke sizes (robustutils/profiles.py), so that a
# crash on those paths shows here and not first on a reader's GPU. Each profile has its own folder.
TEST_PROFILES := smoke colab-smoke full-smoke

# ruff: lint (pyflakes, pycodestyle, import order, bugbear) of the library, tests and chapters, and
# the library's and tests' formatting; the rules are in pyproject.toml.
lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: install lint
	rm -rf $(addprefix $(BUILD)/,$(TEST_PROFILES)) && mkdir -p $(addprefix $(BUILD)/,$(TEST_PROFILES))
	@for profile in $(TEST_PROFILES); do for nb in $(NOTEBOOKS); do \
	  $(BIN)/papermill --prepare-only -k $(KERNEL) $$nb $(BUILD)/$$profile/$$(basename $$nb) -p PROFILE $$profile || exit 1; \
	done; done
	$(BIN)/pytest tests $(addprefix $(BUILD)/,$(TEST_PROFILES)) --nbval-lax --nbval-kernel-name $(KERNEL) --durations=20

$(BIN)/.browser: $(BIN)/.installed .ci/install-browser
	bash .ci/install-browser $(BROWSER_CACHE)
	touch $@

browser: $(BIN)/.browser
	ROBUSTBOOK_HTML=$(CURDIR)/$(BUILD)/html ROBUSTBOOK_SCREENSHOTS=$(CURDIR)/$(BUILD)/screenshots \
	ROBUSTBOOK_MATHJAX=$(CURDIR)/$(BROWSER_CACHE)/mathjax \
	  $(BIN)/pytest tests/browser_check.py -p no:cacheprovider -q
	@echo "Screenshots of each page's first screen: $(CURDIR)/$(BUILD)/screenshots"

bench: install
	$(BIN)/python -m robustutils.bench $(BENCH)

# The GPU check runs with the machine's own python3 (GPU_PYTHON), which holds its CUDA torch: a lent
# device machine has no network to build .venv. Here, with the venv: make gpu-check GPU_PYTHON=.venv/bin/python.
GPU_PYTHON ?= python3
GPU_CHECK ?=

gpu-bundle:
	bash .ci/gpu-bundle

gpu-check:
	GPU_PYTHON=$(GPU_PYTHON) bash .ci/gpu-check $(GPU_CHECK)

clean:
	rm -rf $(BUILD) .cache .pytest_cache .hypothesis .gpu
