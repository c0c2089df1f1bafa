# Two commands for people: `make run` (the app) and `make test` (lint + tests). Both install what they need.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
LLAMA_STAMP := $(VENV)/.installed-llamacpp
# pip's install report (JSON on stdin) as name==version lines; local labels dropped (torch 2.13.0+cpu -> 2.13.0).
define LOCK_PINS
import json, sys
pins = {i["metadata"]["name"]: i["metadata"]["version"].split("+")[0] for i in json.load(sys.stdin)["install"]}
pins.pop("team-knowledge-assistant")
print("# The project's dependencies with its dev + llamacpp extras, resolved for Python 3.11. Made by `make lock`.")
print("\n".join(f"{name}=={version}" for name, version in sorted(pins.items(), key=lambda p: p[0].lower())))
endef
export LOCK_PINS

.PHONY: run test test-all lint install lock system-deps eval-data eval bench clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip -c constraints.txt
	# The CPU build of PyTorch that lies on this machine; a plain `torch` pulls GBs of CUDA.
	$(BIN)/pip install --quiet "torch==2.13.0" -c constraints.txt
	$(BIN)/pip install --quiet -e ".[dev]" -c constraints.txt
	touch $(STAMP)

# The full suite also answers through a real model server: llama.cpp, compiled from source (about 6-9 minutes,
# once), for any x86-64 or ARM CPU: a -march=native build (the default) dies with SIGILL on a CPU that lacks
# this one's instructions (AVX-512, AMX).
$(LLAMA_STAMP): $(STAMP) constraints.txt
	CMAKE_ARGS="-DGGML_NATIVE=OFF" $(BIN)/pip install --quiet -e ".[dev,llamacpp]" -c constraints.txt
	touch $(LLAMA_STAMP)

install: $(STAMP)

# Resolve pyproject.toml afresh (dev + llamacpp extras, Python 3.11) and pin the result in constraints.txt.
lock:
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --dry-run --ignore-installed --report - "torch==2.13.0" ".[dev,llamacpp]" \
	  | $(BIN)/python -c "$$LOCK_PINS" > constraints.txt.new
	mv constraints.txt.new constraints.txt

run: $(STAMP)
	env -u CI $(BIN)/chainlit run app.py --host 127.0.0.1 --port $${PORT:-8000} --headless

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy core chains ingest ui app.py benchmarks

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

# The quick verdict (about 3 minutes on 2 cores): lint, unit tests, Milvus Lite integration (README: Tests).
test: $(STAMP) lint
	$(BIN)/pytest -m "not slow"

# Everything: three Milvus backends, PostgreSQL, crash and replica trials, soak, llama.cpp, evaluation, browser.
test-all: system-deps $(LLAMA_STAMP) lint
	$(BIN)/pytest

# Every performance comparison side by side in one run; writes BENCHMARKS.md (about 20 minutes).
bench: system-deps $(STAMP)
	$(BIN)/python -m benchmarks

# One development corpus: Debian's git documentation (apt-get install git-doc); README, Evaluation, has the others.
eval-data: $(STAMP)
	$(BIN)/python -m ingest /usr/share/doc/git/html/*.html --collection gitdoc

eval: $(STAMP)
	$(BIN)/python -m chains eval eval/git-doc-answers.jsonl --collection gitdoc --k 5 --signals

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
