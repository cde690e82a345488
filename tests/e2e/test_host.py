"""The agent installed as operators install it, on a real systemd host with its own engine.

One scenario, in order: boot, `make install` (offline, from a wheelhouse), the README's quick
start, heals of both scopes, probes of every kind to containers' addresses, a webhook to a
non-loopback receiver and a notify command, the README's journal recipes verbatim, reloads,
the watchdog, restarts that keep state, metrics, the sandbox's silence, and a clean stop.
Each step names the defect it would catch. Figures go to build/e2e/figures.json.
"""

from __future__ import annotations

import contextlib
import json
import re
import time

import pytest

from tests.e2e.host import (
    OFFLINE,
    SOURCE_DIR,
    TEST_LABEL,
    UNIT,
    Host,
    ensure_image,
)
from tests.support import REPO, wait_for

pytestmark = pytest.mark.e2e

ETC = "/etc/docker-supervisor"
POLICIES = f"{ETC}/policies.d"
STATE = "/var/lib/docker-supervisor"
IMAGE = "docker-supervisor/busybox:local"
FIGURES = REPO / "build/e2e/figures.json"

# Words the kernel, systemd or a library use when the sandbox refuses something.
SANDBOX_COMPLAINTS = re.compile(
    r"permission denied|read-only file system|operation not permitted|eacces|eperm|erofs|"
    r"cannot read|not allowed|seccomp|blocked",
    re.IGNORECASE,
)


@pytest.fixture(scope="module")
def host():
    image, _ = ensure_image()
    machine = Host(image)
    try:
        with machine:
            yield machine
    finally:
        FIGURES.parent.mkdir(parents=True, exist_ok=True)
        FIGURES.write_text(json.dumps(machine.figures, indent=2, sort_keys=True) + "\n")
        print("\nend-to-end figures (s):", json.dumps(machine.figures, sort_keys=True))


def run_labelled(host: Host, name: str, script: str, *options: str) -> None:
    """A busybox container on the nested engine running `script`."""
    label = f"{TEST_LABEL}=e2e"
    host.run(
        "docker", "run", "-d", "--name", name, "--label", label, *options, IMAGE, "sh", "-c", script
    )


def readme_block(heading: str) -> list[str]:
    """The commands of the first sh block under `heading` in the README, comments cut."""
    text = (REPO / "README.md").read_text()
    block = text.split(f"\n{heading}\n", 1)[1].split("```sh\n", 1)[1].split("```", 1)[0]
    return [line.split("  #", 1)[0].strip() for line in block.splitlines() if line.strip()]


def test_the_readme_quick_start_verbatim_with_make_install_offline(host):
    """The README's "Running it as a service" lines, each as typed, from the checkout (pip
    offline, from a wheelhouse): before the fix nothing here had Compose (start failed: no
    compose found) and docker-supervisor was not on PATH."""
    host.put_project()
    # An operator who logged in to a registry: compose must read this (ProtectHome=yes hid it).
    host.write("/root/.docker/config.json", '{"auths": {}}\n', mode="0600")
    commands = readme_block("## Running it as a service")
    assert commands[0] == "make install" and commands[-1].startswith("systemctl enable --now")
    for command in commands:
        figure = {
            "make install": "install_s",
            "systemctl enable --now docker-supervisor": ("enable_to_ready_s"),
        }.get(command)
        began = time.monotonic()
        host.run("bash", "-c", command, env=OFFLINE, workdir=SOURCE_DIR, timeout=600)
        if figure:
            host.figures[figure] = time.monotonic() - began
    health = host.run(
        "docker", "inspect", "-f", "{{.State.Health.Status}}", "supervisor-demo-web-1"
    )
    assert health.stdout.strip() == "healthy"
    unit = host.unit("ActiveState", "StatusText")
    assert unit["ActiveState"] == "active"
    assert re.fullmatch(r"\d+ services?: .+", unit["StatusText"]), unit


METRICS_DROP_IN = (
    "[Service]\nExecStart=\nExecStart=/opt/docker-supervisor/venv/bin/docker-supervisor run "
    "--policies /etc/docker-supervisor/policies.d --metrics-addr 127.0.0.1:9464\n"
)


def scrape(host: Host) -> dict[str, float]:
    text = host.run("busybox", "wget", "-q", "-O", "-", "http://127.0.0.1:9464/metrics").stdout
    return {
        line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line and not line.startswith("#")
    }


def test_a_restart_keeps_state_and_metrics_are_complete(host):
    """Metrics enabled by a drop-in; the restart keeps the state; process_* metrics are there
    (ProcSubset=pid hid /proc/stat, and prometheus-client dropped them)."""
    host.wait_line("service.status", 30, service="web", status="running")
    host.write("/etc/systemd/system/docker-supervisor.service.d/metrics.conf", METRICS_DROP_IN)
    host.run("systemctl", "daemon-reload")
    host.measure("restart_to_ready_s", lambda: host.run("systemctl", "restart", UNIT))
    metrics = wait_for(lambda: scrape(host), 10, "metrics")
    for name in (
        "process_resident_memory_bytes",
        "process_cpu_seconds_total",
        "process_open_fds",
        "process_start_time_seconds",
        'supervisor_service_status{service="web",status="running"}',
        "supervisor_engine_api_calls_total",
    ):
        assert name in metrics, sorted(metrics)
    assert 10e6 < metrics["process_resident_memory_bytes"] < 200e6


def probes_of(host: Host, service: str, result: str) -> float:
    return scrape(host).get(f'supervisor_probes_total{{result="{result}",service="{service}"}}', 0)


def test_an_http_probe_to_the_containers_address_passes_and_nothing_is_healed(host):
    """Under `IPAddressDeny=any` the demo's probe to web's bridge address timed out and the
    healthy web was healed again and again."""
    wait_for(lambda: probes_of(host, "web", "ok") >= 3, 30, "three probes of web passed")
    assert probes_of(host, "web", "failed") == 0
    assert host.lines("probe.failed", service="web") == []
    assert host.lines("heal.started", service="web") == []


PROBED = """\
service: NAME
match: {name: NAME}
check:
  interval: 1s
  probe:
    PROBE
    timeout: 1s
    period: 1s
    failure_threshold: 2
heal:
  on: [unhealthy]
  stop_timeout: 2s
  pause: 200ms
  ready_timeout: 30s
  backoff: {initial: 1s, factor: 2, max: 4s, jitter: 0}
"""
SERVE = (
    "mkdir -p /www; echo hi > /www/index.html; httpd -f -p 8080 -h /www & "
    "echo $! > /tmp/httpd.pid; trap 'exit 0' TERM; sleep 86400 & wait"
)


@pytest.mark.parametrize(
    ("kind", "probe"),
    [
        ("http", "http: {port: 8080, path: /}"),
        ("tcp", "tcp: {port: 8080}"),
        ("exec", 'exec: ["test", "-f", "/www/index.html"]'),
    ],
)
def test_probes_to_container_addresses_pass_and_fail(host, kind, probe):
    """Each probe kind reaches a container on the nested engine's bridge: OK while it serves,
    failed and healed once it does not (the heal's start serves again)."""
    name = f"probed-{kind}"
    run_labelled(host, name, SERVE)
    path = f"{POLICIES}/{name}.yaml"
    host.write(path, PROBED.replace("NAME", name).replace("PROBE", probe))
    host.run("systemctl", "reload", UNIT)
    host.wait_line("probe.ok", 30, service=name)
    # Break what the probe looks at: the server (http, tcp) or the file (exec).
    if kind == "exec":
        host.run("docker", "exec", name, "rm", "/www/index.html")
    else:
        host.run("docker", "exec", name, "sh", "-c", "kill $(cat /tmp/httpd.pid)")
    failed = host.wait_line("probe.failed", 30, service=name)
    assert failed["kind"] == kind
    host.wait_line("heal.recovered", 60, service=name)
    host.run("rm", path)
    host.run("systemctl", "reload", UNIT)
    host.run("docker", "rm", "-f", name)


RECEIVER = (
    "mkdir -p /www/cgi-bin; printf '%s\\n' '#!/bin/sh' "
    "'head -c \"$CONTENT_LENGTH\" > /tmp/hook-$$.json' "
    "'printf \"Content-Type: text/plain\\r\\n\\r\\nok\"' > /www/cgi-bin/hook; "
    "chmod +x /www/cgi-bin/hook; exec httpd -f -p 9000 -h /www"
)
TOLD = """\
service: told
match: {name: told}
check: {interval: 1s}
heal:
  on: [unhealthy]
  stop_timeout: 2s
  pause: 200ms
  ready_timeout: 30s
notify:
  on: [heal.recovered]
  webhook: http://ADDRESS:9000/cgi-bin/hook
  command: ["/bin/sh", "-c", "env | grep ^SUPERVISOR_ > /var/lib/docker-supervisor/told.env"]
  timeout: 5s
"""


def test_a_webhook_to_another_host_arrives_and_a_notify_command_runs(host):
    """The webhook goes to a receiver on the bridge, not loopback (the address filter dropped
    it); the command writes where the sandbox lets it (the state directory)."""
    run_labelled(host, "receiver", RECEIVER)
    address = host.container_address("receiver")
    run_labelled(
        host,
        "told",
        "touch /tmp/healthy; trap 'exit 0' TERM; sleep 86400 & wait",
        "--health-cmd",
        "test -f /tmp/healthy",
        "--health-interval",
        "1s",
        "--health-retries",
        "1",
    )
    host.write(f"{POLICIES}/told.yaml", TOLD.replace("ADDRESS", address))
    host.run("systemctl", "reload", UNIT)
    host.wait_line("service.status", 30, service="told", status="running")
    host.run("docker", "exec", "told", "rm", "/tmp/healthy")
    host.wait_line("heal.recovered", 60, service="told")

    def delivered() -> str:
        return host.run(
            "docker", "exec", "receiver", "sh", "-c", "cat /tmp/hook-*.json", check=False
        ).stdout

    body = json.loads(wait_for(delivered, 15, "the webhook at the receiver"))
    assert (body["event"], body["service"]) == ("heal.recovered", "told")
    told = wait_for(
        lambda: host.run("cat", f"{STATE}/told.env", check=False).stdout, 15, "the command"
    )
    assert "SUPERVISOR_EVENT=heal.recovered" in told.splitlines()
    assert host.lines("notify.failed") == []


E2E_COMPOSE = """\
name: e2e
services:
  cache:
    image: docker-supervisor/busybox:local
    pull_policy: never
    init: true
    command: ["sh", "-c", "touch /tmp/healthy; trap 'exit 0' TERM; sleep 86400 & wait"]
    healthcheck:
      test: ["CMD", "test", "-f", "/tmp/healthy"]
      interval: 1s
      timeout: 1s
      retries: 1
"""
CACHE = """\
service: cache
match: {compose_service: cache}
compose:
  file: ../compose/e2e/compose.yml
  project: e2e
check: {interval: 1s}
heal:
  on: [unhealthy, exited]
  scope: compose
  stop_timeout: 2s
  pause: 200ms
  ready_timeout: 30s
"""


def test_compose_scope_heals_and_start_and_stop_work_after_a_plain_install(host):
    """With no compose plugin on the host, the agent's own Compose v2 does the work."""
    host.write(f"{ETC}/compose/e2e/compose.yml", E2E_COMPOSE)
    host.write(f"{POLICIES}/cache.yaml", CACHE)
    cli = ("docker-supervisor",)
    host.run(*cli, "start", "cache", "--policies", POLICIES, timeout=180)
    host.run("systemctl", "reload", UNIT)
    host.wait_line("service.status", 30, service="cache", status="running")
    host.run("docker", "exec", "e2e-cache-1", "rm", "/tmp/healthy")
    recovered = host.wait_line("heal.recovered", 90, service="cache")
    host.figures["compose_heal_s"] = recovered["duration_s"]
    host.run(*cli, "stop", "cache", "--policies", POLICIES, timeout=180)
    state = host.run("docker", "inspect", "-f", "{{.State.Running}}", "e2e-cache-1")
    assert state.stdout.strip() == "false"
    host.run(*cli, "start", "cache", "--policies", POLICIES, timeout=180)
    host.wait_line("service.status", 30, service="cache", status="running", after=1)


def test_a_container_scope_heal_of_the_demo_web(host):
    host.run("docker", "exec", "supervisor-demo-web-1", "rm", "/www/index.html")
    recovered = host.wait_line("heal.recovered", 90, service="web")
    host.figures["container_heal_s"] = recovered["duration_s"]


def readme_recipes() -> list[str]:
    """Every `journalctl` line of the README's code blocks, continuations joined."""
    text = (REPO / "README.md").read_text().replace("\\\n", " ")
    return [
        line.split("  #", 1)[0].strip()
        for line in text.splitlines()
        if line.startswith("journalctl ")
    ]


def expected_in(recipe: str) -> str | None:
    """What the journal so far must show for a recipe (the heals above were of web)."""
    if "gave_up" in recipe:
        return None
    if "web" in recipe:
        return '"web"'
    if "heal." in recipe or "warning" in recipe:
        return "heal."
    return None


def test_every_journal_recipe_in_the_readme_works_verbatim(host):
    """systemd's own lines about the unit ("Starting docker-supervisor.service...") broke
    every jq recipe with a parse error."""
    recipes = readme_recipes()
    assert sum("| jq" in recipe for recipe in recipes) >= 4, recipes
    host.run("systemctl", "restart", UNIT)  # so systemd's own lines are in the journal
    for recipe in recipes:
        follow = " -f " in f" {recipe} "
        done = host.shell(f"timeout 5 {recipe}" if follow else recipe, check=False)
        assert done.returncode == (124 if follow else 0), (recipe, done.stderr)
        assert "parse error" not in done.stderr, (recipe, done.stderr)
        if expected_in(recipe) and not follow:  # -f shows only the last ten lines
            assert expected_in(recipe) in done.stdout, (recipe, done.stdout)


def test_journal_fields_and_priorities_filter_without_jq(host):
    web = host.run("journalctl", "-u", UNIT, "SUPERVISOR_SERVICE=web", "-o", "cat").stdout
    lines = [json.loads(line) for line in web.splitlines()]
    assert lines and {line["service"] for line in lines} == {"web"}
    assert any(line["event"] == "heal.recovered" for line in lines)
    warnings = host.run("journalctl", "-u", UNIT, "-p", "warning", "-o", "json").stdout
    entries = [json.loads(line) for line in warnings.splitlines()]
    assert entries, "the heals above logged warnings"
    assert all(int(entry["PRIORITY"]) <= 4 for entry in entries)
    assert {"heal.started"} <= {entry.get("SUPERVISOR_EVENT") for entry in entries}


def test_reload_with_a_new_a_changed_and_a_broken_policy(host):
    before = len(host.lines("policy.reloaded"))
    host.write(f"{POLICIES}/fresh.yaml", "service: fresh\nmatch: {name: fresh}\n")
    host.write(f"{POLICIES}/cache.yaml", CACHE.replace("pause: 200ms", "pause: 300ms"))
    host.write(
        f"{POLICIES}/broken.yaml", "service: broken\nmatch: {name: broken}\nheal: {pause: soon}\n"
    )
    host.run("systemctl", "reload", UNIT)
    reloaded = host.wait_line("policy.reloaded", 30, after=before)
    counts = {k: reloaded[k] for k in ("added", "changed", "removed", "invalid")}
    assert counts == {"added": 1, "changed": 1, "removed": 0, "invalid": 1}, reloaded
    invalid = host.wait_line("policy.invalid", 10, file=f"{POLICIES}/broken.yaml")
    assert (invalid["line"], invalid["field"]) == (3, "heal.pause")
    assert host.unit("ActiveState")["ActiveState"] == "active"
    host.run("rm", f"{POLICIES}/broken.yaml", f"{POLICIES}/fresh.yaml")
    host.run("systemctl", "reload", UNIT)


def readme_commands(heading: str) -> list[str]:
    """As readme_block, with lines continued by a backslash joined, as a shell reads them."""
    text = (REPO / "README.md").read_text()
    block = text.split(f"\n{heading}\n", 1)[1].split("```sh\n", 1)[1].split("```", 1)[0]
    joined = block.replace("\\\n", " ")
    return [line.split("  #", 1)[0].strip() for line in joined.splitlines() if line.strip()]


def test_the_readme_move_from_autoheal_verbatim(host):
    """The README's way off docker-autoheal, line by line on the host, against a running
    autoheal-like container (its environment is what is read) and a labelled container: the
    written policy validates, the dry run names the container, the reload supervises it as
    its own service, and it is healed. The dry run runs until Ctrl-C: here, 8 seconds."""
    host.run(
        "docker", "run", "-d", "--name", "autoheal", "--restart", "always",
        "--label", f"{TEST_LABEL}=e2e", "-e", "AUTOHEAL_INTERVAL=3", IMAGE, "sleep", "86400",
    )  # fmt: skip
    run_labelled(
        host,
        "tagged-one",
        "touch /tmp/ok; exec sleep 86400",
        "--label", "autoheal=true", "--health-cmd", "test -f /tmp/ok", "--health-interval", "1s",
    )  # fmt: skip
    before = len(host.lines("policy.reloaded"))
    commands = readme_commands("## Moving from docker-autoheal")
    assert len(commands) == 5 and "--dry-run" in commands[2], commands
    for command in commands:
        if "--dry-run" in command:
            dry = host.shell(f"timeout 8 {command}", check=False, timeout=30)
            assert dry.returncode == 124, dry.stderr  # still running when cut
            added = [json.loads(line) for line in dry.stdout.splitlines()]
            assert [x["service"] for x in added if x["event"] == "selector.added"] == ["tagged-one"]
            assert all(x["dry_run"] for x in added)
        else:
            host.shell(command)
    assert "interval: 3s" in host.run("cat", f"{POLICIES}/autoheal.yaml").stdout
    assert host.run("docker", "inspect", "-f", "{{.State.Running}}", "autoheal").stdout == (
        "false\n"
    )
    host.wait_line("policy.reloaded", 30, after=before)
    host.wait_line("selector.added", 30, service="tagged-one", selector="autoheal")
    host.wait_line("service.status", 30, service="tagged-one", status="running")
    host.run("docker", "exec", "tagged-one", "rm", "/tmp/ok")
    host.wait_line("heal.recovered", 60, service="tagged-one")
    out = json.loads(host.run("docker-supervisor", "status", POLICIES, "--json").stdout)
    rows = {row["service"]: row for row in out["services"]}
    assert rows["tagged-one"]["restarts_in_window"] == 1, rows["tagged-one"]
    # Leave the host as the later steps expect it: the policy and the containers gone.
    host.run("rm", f"{POLICIES}/autoheal.yaml")
    host.run("systemctl", "reload", UNIT)
    host.run("docker", "rm", "-f", "tagged-one", "autoheal")
    host.wait_line("selector.removed", 30, service="tagged-one")


def test_status_from_a_shell_sees_the_agent(host):
    out = json.loads(host.run("docker-supervisor", "status", POLICIES, "--json").stdout)
    assert out["agent"] is not None and out["agent"]["pid"] > 0, out
    rows = {row["service"]: row for row in out["services"]}
    assert rows["web"]["status"] == "running"
    # The heal above, kept across the restarts since.
    assert rows["web"]["restarts_in_window"] == 1, rows["web"]
    assert rows["web"]["last_heal"] is not None, rows["web"]


SHELLS = {
    # A login bash loads Debian's bash-completion, which finds ours by the command's name.
    "bash": "bash --login -i",
    # zsh finds _docker-supervisor on its default fpath once compinit runs.
    "zsh": "zsh -i",
}


@pytest.mark.parametrize("shell", sorted(SHELLS))
def test_tab_completes_commands_and_the_policies_services(host, shell):
    """What `make install` put in place, in a real shell on a real terminal (tmux): Tab
    after a command offers the commands that fit, after `pause` the policies' services.
    Tab is pressed as a person would, until the shell lists (bash first completes the
    common prefix, then lists on a second Tab after a bell)."""
    listed = host.run("docker-supervisor", "validate", POLICIES).stdout
    services = sorted(re.findall(r"ok: service (\S+)", listed))
    assert len(services) >= 2, listed
    host.write("/root/.zshrc", "autoload -Uz compinit && compinit -u\nPS1='$ '\n")
    session = f"complete-{shell}"
    host.run("tmux", "new-session", "-d", "-s", session, "-x", "200", "-y", "50", SHELLS[shell])
    try:
        for line, expected in (
            ("docker-supervisor re", ["reset", "restart", "resume"]),
            ("docker-supervisor pause ", services),
        ):
            host.run("tmux", "send-keys", "-t", session, "C-u", line)

            def offered(expected=expected):  # the pane holds this line's attempt alone
                pane = host.run("tmux", "capture-pane", "-p", "-t", session).stdout
                return all(re.search(rf"\b{w}\b", pane) for w in expected)

            for _ in range(4):
                host.run("tmux", "send-keys", "-t", session, "Tab")
                with contextlib.suppress(AssertionError):
                    wait_for(offered, 3, "a list")
                    break
            assert offered(), host.run("tmux", "capture-pane", "-p", "-t", session).stdout
            host.run("tmux", "send-keys", "-t", session, "C-c")
            host.run("tmux", "send-keys", "-t", session, "clear", "Enter")
    finally:
        host.run("tmux", "kill-session", "-t", session, check=False)


def test_status_watch_redraws_in_place_at_80_columns(host):
    """On a real terminal: one table, redrawn (not scrolled), no line past 80 columns, the
    status in colour; an operator's pause shows within a refresh. Piped: JSON lines."""
    session = "watch"
    command = f"docker-supervisor status {POLICIES} --watch --interval 1s"
    host.run("tmux", "new-session", "-d", "-s", session, "-x", "80", "-y", "40", command)

    def screen(*options: str) -> str:
        return host.run("tmux", "capture-pane", "-p", *options, "-t", session).stdout

    def web_line(pattern: str):
        found = re.search(rf"^web .*{pattern}.*$", screen(), re.MULTILINE)
        return found.group(0) if found else None

    try:
        wait_for(lambda: "agent: pid" in screen() and web_line("running"), 30, "a first screen")
        first = screen()
        assert max(len(line) for line in first.splitlines()) <= 80, first
        assert first.count("SERVICE") == 1, first
        assert "\x1b[32mrunning" in screen("-e")  # green, on a terminal
        host.run("docker-supervisor", "pause", "web", "--policies", POLICIES)
        assert "held" in wait_for(lambda: web_line("held"), 20, "web shown held")
        assert screen().count("SERVICE") == 1  # redrawn in place
    finally:
        host.run("docker-supervisor", "resume", "web", "--policies", POLICIES)
        host.run("tmux", "kill-session", "-t", session, check=False)
    piped = host.shell(f"{command} | head -n 2").stdout.splitlines()
    assert len(piped) == 2
    for line in piped:
        rows = {row["service"]: row for row in json.loads(line)["services"]}
        assert rows["web"]["status"] == "running" and "\x1b" not in line


WATCHDOG_DROP_IN = "[Service]\nWatchdogSec=4s\n"


def test_the_watchdog_restarts_a_frozen_agent(host):
    host.write("/etc/systemd/system/docker-supervisor.service.d/watchdog.conf", WATCHDOG_DROP_IN)
    host.run("systemctl", "daemon-reload")
    host.run("systemctl", "restart", UNIT)
    unit = host.unit("MainPID", "NRestarts")
    frozen_at = time.monotonic()
    host.run("kill", "-STOP", unit["MainPID"])

    def restarted() -> bool:
        now = host.unit("MainPID", "NRestarts", "ActiveState")
        return (
            int(now["NRestarts"]) > int(unit["NRestarts"])
            and now["ActiveState"] == "active"
            and now["MainPID"] != unit["MainPID"]
        )

    wait_for(restarted, 60, "systemd to restart the frozen agent")
    host.figures["watchdog_4s_restart_s"] = time.monotonic() - frozen_at
    host.run("rm", "/etc/systemd/system/docker-supervisor.service.d/watchdog.conf")
    host.run("systemctl", "daemon-reload")


def test_the_journal_holds_no_sandbox_complaint(host):
    complaints = [
        entry["MESSAGE"]
        for entry in host.journal()
        if isinstance(entry.get("MESSAGE"), str) and SANDBOX_COMPLAINTS.search(entry["MESSAGE"])
    ]
    assert complaints == []
    # The host-pressure guard reads /proc/pressure and /proc/meminfo every 2 s from inside
    # the sandbox (the agent has run for minutes): never a failed reading.
    assert host.lines("agent.ready") and host.lines("pressure.unreadable") == []


def test_systemd_analyze_security_online(host):
    out = host.run("systemd-analyze", "security", UNIT, "--no-pager").stdout
    [line] = [x for x in out.splitlines() if "Overall exposure level" in x]
    score = float(line.split(":")[1].split()[0])
    host.figures["exposure"] = score
    assert score <= 2.5, line


def test_stop_is_clean(host):
    host.measure("stop_s", lambda: host.run("systemctl", "stop", UNIT))
    unit = host.unit("ActiveState", "Result", "ExecMainStatus")
    assert unit == {"ActiveState": "inactive", "Result": "success", "ExecMainStatus": "0"}
    stopped = host.run(
        "docker", "ps", "-a", "--filter", "status=exited", "--format", "{{.Names}}"
    ).stdout.split()
    assert "supervisor-demo-web-1" not in stopped and "e2e-cache-1" not in stopped
