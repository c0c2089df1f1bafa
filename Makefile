# Two commands for people: `make run` (the app) and `make test` (lint + tests). Both install what they need.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
LLAMA_STAMP := $(VENV)/.installed-llamacpp

.PHONY: run test lint install system-deps eval-data eval bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# The CPU build of PyTorch that lies on this machine; a plain `torch` pulls GBs of CUDA.
	$(BIN)/pip install --quiet "torch==2.13.0"
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $(STAMP)

# The tests also answer through a real model server: llama.cpp, compiled from source (about 6-9 minutes, once).
$(LLAMA_STAMP): $(STAMP)
	$(BIN)/pip install --quiet -e ".[dev,llamacpp]"
	touch $(LLAMA_STAMP)

install: $(STAMP)

run: $(STAMP)
	env -u CI $(BIN)/chainlit run app.py --host 127.0.0.1 --port $${PORT:-8000} --headless

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy core chains ingest app.py benchmarks

# Debian packages the tests use: chromium (browser tests), git-doc (the evaluation corpus),
# postgresql (chat history on a real PostgreSQL server the tests start and stop themselves) and
# g++ (llama.cpp is compiled for the model-server tests).
system-deps:
	@missing=""; \
	[ -x /usr/bin/chromium ] || missing="$$missing chromium"; \
	[ -d /usr/share/doc/git/html ] || missing="$$missing git-doc"; \
	ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing="$$missing postgresql"; \
	command -v g++ >/dev/null || missing="$$missing g++"; \
	if [ -n "$$missing" ]; then \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing; \
	fi

test: system-deps $(LLAMA_STAMP) lint
	$(BIN)/pytest

# Every performance comparison side by side in one run; writes BENCHMARKS.md (about 20 minutes).
bench: system-deps $(STAMP)
	$(BIN)/python -m benchmarks

# The development dataset's corpus: Debian's git documentation (apt-get install git-doc).
eval-data: $(STAMP)
	$(BIN)/python -m ingest /usr/share/doc/git/html/*.html --collection gitdoc

eval: $(STAMP)
	$(BIN)/python -m chains eval eval/git-doc-dev.jsonl --collection gitdoc --k 5

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
