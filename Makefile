# Poisoned Data — every target installs what it needs into .venv first.
#   make book   execute every chapter and build the site into _build/html
#   make test   unit tests + every chapter executed as a test, through the site's notebook cache
#   make lab    open the chapters in JupyterLab
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
PYTEST_WORKERS ?= 2
CORES := $(shell nproc 2>/dev/null || echo 2)
WORKER_THREADS ?= $(shell echo $$(( $(CORES) / $(PYTEST_WORKERS) > 0 ? $(CORES) / $(PYTEST_WORKERS) : 1 )))

.PHONY: help setup book notebooks site-test reader-test lab test unit lint bench assignments grade clean distclean

help:
	@echo "make book    execute the chapters and build the site into _build/html"
	@echo "make site-test  open every page of the built site, and every reader copy in JupyterLab, offline in headless Chromium (after make book)"
	@echo "make test    unit tests and every chapter executed as a test"
	@echo "make reader-test  run every reader copy in notebooks/ top to bottom as Colab would (about 10 min)"
	@echo "make notebooks  reader copies of the chapters for Colab and Jupyter in notebooks/"
	@echo "make lab     open JupyterLab on the chapters"
	@echo "make bench   time every chapter (wall time, peak memory) and one training epoch"
	@echo "make assignments  student notebooks and instructor material (nbgrader) in _build/course"
	@echo "make grade SUBMISSIONS=<folder>  grade <folder>/<student>/<chapter>.ipynb into _build/grades"
	@echo "make lint    ruff: static checks and formatting of the code and the chapters"
	@echo "make clean   remove build output (make distclean also removes .venv)"

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e ".[book,test,lab,course]"
	@touch $(STAMP)

setup: $(STAMP)

book: $(STAMP)
	$(BIN)/jupyter-book build . -W --keep-going
	@echo "The site is in _build/html/index.html"
	$(BIN)/python -m poisonlab_course.reader

# Reader copies of the chapters for Colab and plain Jupyter (plain Markdown, the reference run's
# numbers, no solutions) in notebooks/, from the executed chapters in the site's cache.
notebooks: $(STAMP)
	$(BIN)/jupyter-book build . --keep-going >/dev/null
	$(BIN)/python -m poisonlab_course.reader

# The built site read offline in a real browser: formulas typeset, images loaded, no request to
# another host, no JavaScript error; screenshots of the chapters in _build/screenshots.
# Then the reader copies in notebooks/, opened in JupyterLab in the same browser: Markdown rendered,
# formulas typeset, no MyST markup, no solution; screenshots lab-<chapter>.png.
# Needs Chromium and chromedriver (.ci/run installs Debian's chromium and chromium-driver).
site-test: $(STAMP)
	@test -s _build/html/index.html || { echo "no site in _build/html: run make book first"; exit 2; }
	$(BIN)/python -m pytest -q tests/test_site_browser.py tests/test_reader_jupyterlab.py

# Every reader copy in notebooks/ executed top to bottom in a fresh kernel as Colab runs it
# (google.colab present, the setup cell installing from this clone, the exercises left as stubs).
# It runs every chapter again, so it is not part of `make test`; CI runs it after `make site-test`.
reader-test: $(STAMP)
	READER_COPIES_RUN=1 OMP_NUM_THREADS=$(WORKER_THREADS) $(BIN)/python -m pytest -q -n $(PYTEST_WORKERS) --dist load \
		tests/test_reader.py -k top_to_bottom

# Each pytest worker (and the notebook kernel it starts) gets its share of the cores: two
# workers each running torch on every core oversubscribe the CPU and run several times slower.
# tests/test_chapters_execute.py executes each chapter into the site's cache (_build/.jupyter_cache),
# so that `make book` afterwards executes only the chapters that changed since.
# The site's browser test reads the built site, so it runs after `make book`, as `make site-test`,
# with the browser test of the reader copies in JupyterLab.
NOT_SITE := --ignore=tests/test_site_browser.py --ignore=tests/test_reader_jupyterlab.py
test: $(STAMP)
	OMP_NUM_THREADS=$(WORKER_THREADS) $(BIN)/python -m pytest -n $(PYTEST_WORKERS) --dist load tests $(NOT_SITE)

unit: $(STAMP)
	OMP_NUM_THREADS=$(WORKER_THREADS) $(BIN)/python -m pytest -n $(PYTEST_WORKERS) --dist load tests $(NOT_SITE) \
		--deselect tests/test_chapters_execute.py::test_chapter_executes

lab: $(STAMP)
	$(BIN)/jupyter lab chapters

bench: $(STAMP)
	$(BIN)/python benchmarks/run.py

# The course tooling is the package poisonlab_course (lib/poisonlab_course), installed with poisonlab.
# VARIANT=<n> gives everyone variant n of the exercises' cases; ROSTER=<csv> one variant per student.
VARIANT ?= 0
assignments: $(STAMP)
	$(BIN)/python -m poisonlab_course.assignments --out _build/course --variant $(VARIANT) \
		$(if $(ROSTER),--roster "$(ROSTER)")

# Each submission runs in its own process, GRADE_TIMEOUT seconds and GRADE_MEMORY MiB at most;
# GRADE_JOBS of them side by side.
GRADE_TIMEOUT ?= 120
GRADE_MEMORY ?= 2048
GRADE_JOBS ?= 1
grade: $(STAMP)
	@test -n "$(SUBMISSIONS)" || { echo "usage: make grade SUBMISSIONS=<folder of <student>/<chapter>.ipynb>"; exit 2; }
	@test -d _build/course/source || $(MAKE) assignments
	$(BIN)/python -m poisonlab_course.grade "$(SUBMISSIONS)" --course _build/course --out _build/grades \
		--timeout $(GRADE_TIMEOUT) --memory $(GRADE_MEMORY) --jobs $(GRADE_JOBS)

LINTED := lib tests benchmarks chapters
lint: $(STAMP)
	$(BIN)/ruff check $(LINTED)
	$(BIN)/ruff format --check $(LINTED)

clean:
	rm -rf _build .pytest_cache
	find . -name __pycache__ -not -path "./$(VENV)/*" -prune -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV)
