# streamrec — every target is a thin wrapper over a command you could type yourself.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.streamrec-installed

.DEFAULT_GOAL := help
.PHONY: help install demo test test-fast lint kafka-up kafka-down bench-kafka gpu-wheels clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  make %-12s %s\n", $$1, $$2}'

install: ## create the virtualenv and install streamrec with its test tools (reused when up to date)
	@test -x $(PY) || python3 -m venv $(VENV)
	@want="$(CURDIR) $$(md5sum < pyproject.toml)"; \
	if [ "$$(cat $(STAMP) 2>/dev/null)" != "$$want" ]; then \
	  echo "installing streamrec into $(VENV) (first time: torch is a large download)"; \
	  $(PY) -m pip install -q --upgrade pip && \
	  $(PY) -m pip install -q -e '.[dev,gguf]' && echo "$$want" > $(STAMP); \
	fi

demo: install ## synthetic shop + tiny GPT-2 + embedded replay: prints recommendations and metrics
	$(VENV)/bin/streamrec demo --out-dir demo-out

test: install ## the whole test suite (Kafka tests need `make kafka-up` or Docker)
	$(PY) -m pytest

test-fast: install ## everything but the Kafka tests
	$(PY) -m pytest -m "not kafka"

lint: install ## ruff + mypy, configured in pyproject.toml
	$(VENV)/bin/ruff check streamrec tests benchmarks
	$(VENV)/bin/mypy

kafka-up: ## start a local Apache Kafka 4 broker on 127.0.0.1:9092 (Java 17 + Maven, no Docker)
	scripts/kafka-up.sh

kafka-down: ## stop the local broker
	scripts/kafka-down.sh

bench-kafka: install ## Kafka path vs embedded replay, same log and model -> benchmarks/results/
	$(PY) benchmarks/kafka_vs_replay.py

gpu-wheels: ## wheels the GPU image lacks, for benchmarks/gpu.sh on a device machine (into .whl/)
	$(PY) -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
		--platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
		-d .whl pydantic==2.14.4 pydantic-core==2.50.5 pydantic-settings==2.16.3 python-dotenv==1.2.4 \
		typing-inspection==0.4.5 annotated-types==0.8.0 river==0.26.1

clean: ## remove demo output and caches (keeps the virtualenv)
	rm -rf demo-out .pytest_cache .mypy_cache .ruff_cache
