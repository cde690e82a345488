# Two commands on a fresh Debian machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
IMAGE := docker-supervisor/busybox:local
DEMO_COMPOSE := compose/demo/compose.yml
COMPOSE := $(BIN)/docker-compose

.PHONY: demo demo-down test lint format engine venv images clean

engine:
	@scripts/ensure-engine

$(BIN)/docker-supervisor: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	@touch $@

venv: $(BIN)/docker-supervisor

images: engine
	mkdir -p build/busybox
	cp /bin/busybox build/busybox/busybox
	docker build --quiet -t $(IMAGE) -f compose/demo/busybox.Dockerfile build/busybox

demo: engine venv images
	$(COMPOSE) -f $(DEMO_COMPOSE) up -d
	$(BIN)/docker-supervisor validate policies
	@echo "Agent running on policies/ (Ctrl-C stops it; make demo-down removes the stack)."
	$(BIN)/docker-supervisor run --policies policies --state-dir .state

demo-down: venv
	$(COMPOSE) -f $(DEMO_COMPOSE) down

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: venv
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

test: engine venv images
	$(BIN)/pytest -q tests

clean:
	rm -rf $(VENV) build .state
