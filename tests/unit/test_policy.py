"""policy.py: durations, defaults, and every error message, with its file, line and field."""

from pathlib import Path

import pytest

from supervisor.config.model import BackoffPolicy, CheckPolicy, HealPolicy
from supervisor.config.policy import load_policies, load_policy_dir, load_policy_file
from supervisor.config.values import parse_duration
from supervisor.errors import PolicyError, PolicyErrors

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("500ms", 0.5),
        ("10s", 10.0),
        ("5m", 300.0),
        ("1h", 3600.0),
        ("1h30m", 5400.0),
        ("1m30s", 90.0),
        ("2.5s", 2.5),
        (0, 0.0),
        (7, 7.0),
        (1.5, 1.5),
        ("45", 45.0),
    ],
)
def test_parse_duration(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("bad", ["soon", "", "10x", "s", "10 s", "-5s", -1, True, None, [1], "1h-"])
def test_parse_duration_rejects(bad):
    with pytest.raises(ValueError):
        parse_duration(bad)


def write(tmp_path: Path, text: str, name: str = "p.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def error_of(tmp_path: Path, text: str) -> str:
    path = write(tmp_path, text)
    with pytest.raises(PolicyError) as caught:
        load_policy_file(path)
    return str(caught.value).replace(str(tmp_path) + "/", "")


def test_minimal_policy_gets_the_documented_defaults(tmp_path):
    policy = load_policy_file(write(tmp_path, "service: web\nmatch: {name: web}\n"))
    assert policy.service == "web"
    assert policy.match.name == "web"
    assert policy.compose is None
    assert policy.check == CheckPolicy(interval_s=10.0, grace_s=0.0, failures=1)
    assert policy.heal == HealPolicy(
        on=frozenset({"unhealthy"}),
        scope="container",
        stop_timeout_s=None,  # each container's own StopTimeout
        pause_s=2.0,
        ready_timeout_s=120.0,
        backoff=BackoffPolicy(initial_s=10.0, factor=2.0, max_s=300.0, jitter=0.1),
        max_restarts=5,
        window_s=600.0,
        reset_after_s=600.0,
    )


def test_full_policy(tmp_path):
    (tmp_path / "compose.yml").write_text("services: {}\n")
    policy = load_policy_file(
        write(
            tmp_path,
            """\
service: web
match:
  compose_service: web
  label: {app: web, tier: 1}
  name: web
  port: 8080
compose: {file: compose.yml, project: demo}
check: {interval: 500ms, grace: 1m, failures: 3}
heal:
  on: [unhealthy, exited, missing]
  scope: compose
  stop_timeout: 1s
  pause: 0
  ready_timeout: 1h30m
  backoff: {initial: 1s, factor: 3, max: 1m, jitter: 0}
  max_restarts: 2
  window: 5m
  reset_after: 30s
""",
        )
    )
    assert policy.match.labels == {"app": "web", "tier": "1"}
    assert policy.match.port == 8080
    assert policy.compose.file == tmp_path / "compose.yml"
    assert policy.compose.project == "demo"
    assert policy.check == CheckPolicy(0.5, 60.0, 3)
    assert policy.heal.on == frozenset({"unhealthy", "exited", "missing"})
    assert policy.heal.backoff == BackoffPolicy(1.0, 3.0, 60.0, 0.0)
    assert (policy.heal.pause_s, policy.heal.ready_timeout_s) == (0.0, 5400.0)
    assert (policy.heal.max_restarts, policy.heal.window_s, policy.heal.reset_after_s) == (
        2,
        300.0,
        30.0,
    )


BASE = "service: web\nmatch: {name: web}\n"


def test_healing_a_missing_service_by_itself_needs_its_compose_name(tmp_path):
    """A missing container has no label to say which compose service to create."""
    (tmp_path / "compose.yml").write_text("services: {}\n")
    head = BASE + "compose: {file: compose.yml}\nheal:\n  on: [missing]\n"
    assert error_of(tmp_path, head + "  scope: compose\n") == (
        "p.yaml:5: at 'heal.on': healing 'missing' with scope compose needs "
        "match.compose_service (the service to create), or scope project"
    )
    assert load_policy_file(write(tmp_path, head + "  scope: project\n")).heal.scope == "project"
    named = head.replace("{name: web}", "{name: web, compose_service: web}")
    assert load_policy_file(write(tmp_path, named + "  scope: compose\n")).heal.scope == "compose"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            BASE + "heal:\n  backoff:\n    max: soon\n",
            "p.yaml:5: at 'heal.backoff.max': expected a duration like 30s, got 'soon'",
        ),
        (
            BASE + "check:\n  intervall: 5s\n",
            "p.yaml:4: at 'check.intervall': unknown key (expected one of: interval, grace, "
            "failures, probe)",
        ),
        (
            "service: web\n",
            "p.yaml:1: at 'match': required: how to find the container",
        ),
        (
            "match: {name: web}\n",
            "p.yaml:1: at 'service': required",
        ),
        (
            "service: web\nmatch: {}\n",
            "p.yaml:2: at 'match': expected at least one of compose_service, label, name, port, "
            "selector",
        ),
        (
            BASE + "compose:\n  file: nowhere.yml\n",
            "p.yaml:4: at 'compose.file': no such file: nowhere.yml",
        ),
        (
            "service: Web!\nmatch: {name: web}\n",
            "p.yaml:1: at 'service': expected a name like web or db-1 ([a-z0-9][a-z0-9_.-]*), "
            "got 'Web!'",
        ),
        (
            BASE + "check:\n  failures: 0\n",
            "p.yaml:4: at 'check.failures': expected a whole number >= 1, got 0",
        ),
        (
            BASE + "check:\n  interval: 0s\n",
            "p.yaml:4: at 'check.interval': expected a duration above 0, got '0s'",
        ),
        (
            BASE + "heal:\n  on: [unhealthy, sad]\n",
            "p.yaml:4: at 'heal.on': expected reasons from unhealthy, exited, oom_killed, dead, "
            "missing, got 'sad'",
        ),
        (
            BASE + "heal:\n  scope: compose\n",
            "p.yaml:4: at 'heal.scope': scope compose needs a compose section with a file",
        ),
        (
            BASE + "heal:\n  on: [unhealthy, missing]\n",
            "p.yaml:4: at 'heal.on': healing 'missing' needs heal.scope compose or project",
        ),
        (
            BASE + "heal:\n  scope: project\n",
            "p.yaml:4: at 'heal.scope': scope project needs a compose section with a file",
        ),
        (
            BASE + "heal:\n  scope: host\n",
            "p.yaml:4: at 'heal.scope': expected one of container, compose, project, got 'host'",
        ),
        (
            BASE + "heal:\n  backoff: {initial: 1m, max: 10s}\n",
            "p.yaml:4: at 'heal.backoff.max': must be at least heal.backoff.initial",
        ),
        (
            BASE + "heal:\n  backoff: {jitter: 1}\n",
            "p.yaml:4: at 'heal.backoff.jitter': expected a number from 0 and below 1, got 1",
        ),
        (
            "service: web\nmatch: {port: 70000}\n",
            "p.yaml:2: at 'match.port': expected a port number from 1 to 65535, got 70000",
        ),
        (
            BASE + "heal: [1, 2]\n",
            "p.yaml:3: at 'heal': expected a mapping, got list [1, 2]",
        ),
        (
            "service: web\nservice: db\nmatch: {name: web}\n",
            "p.yaml:2: at 'service': duplicate key",
        ),
        (
            "service: web\nmatch: {name: [unclosed\n",
            "p.yaml:3: invalid YAML: expected ',' or ']', but got '<stream end>'",
        ),
        (
            "service: auto\nmatch:\n  name: web\n  selector: {autoheal: 'true'}\n",
            "p.yaml:4: at 'match.selector': a selector stands alone: remove the other match keys",
        ),
        (
            "service: auto\nmatch:\n  selector: {}\n",
            "p.yaml:3: at 'match.selector': expected at least one label: value",
        ),
        (
            "service: auto\nmatch:\n  selector: every\n",
            "p.yaml:3: at 'match.selector': expected all, or a mapping of label names to values, "
            "got 'every'",
        ),
        ("", "p.yaml:1: empty file: expected a mapping"),
        ("- a\n- b\n", "p.yaml:1: expected a mapping, got list ['a', 'b']"),
    ],
)
def test_error_lines(tmp_path, text, message):
    assert error_of(tmp_path, text) == message


def test_on_is_a_key_not_a_boolean(tmp_path):
    policy = load_policy_file(write(tmp_path, BASE + "heal:\n  on: [exited]\n"))
    assert policy.heal.on == frozenset({"exited"})


def test_binary_garbage_is_one_line(tmp_path):
    path = tmp_path / "g.yaml"
    path.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(PolicyError) as caught:
        load_policy_file(path)
    assert str(caught.value) == f"{path}:1: not UTF-8 text"


def test_directory_reports_every_problem_and_keeps_valid_siblings(tmp_path):
    write(tmp_path, "service: web\nmatch: {name: web}\n", "a.yaml")
    write(tmp_path, "service: db\nmatch: {name: db}\ncheck: {interval: soon}\n", "b.yml")
    write(tmp_path, "# again\nservice: web\nmatch: {name: other}\n", "c.yaml")
    write(tmp_path, "not a policy", "notes.txt")
    result = load_policy_dir(tmp_path)
    assert [p.service for p in result.policies] == ["web"]
    assert [str(e) for e in result.errors] == [
        f"{tmp_path}/b.yml:3: at 'check.interval': expected a duration like 30s, got 'soon'",
        f"{tmp_path}/c.yaml:2: at 'service': 'web' is already defined in {tmp_path}/a.yaml",
    ]
    with pytest.raises(PolicyErrors) as caught:
        load_policies(tmp_path)
    assert len(caught.value.errors) == 2


def test_missing_and_empty_directories(tmp_path):
    assert [str(e) for e in load_policy_dir(tmp_path).errors] == [
        f"{tmp_path}: no policy files (*.yaml, *.yml)"
    ]
    assert [str(e) for e in load_policy_dir(tmp_path / "nope").errors] == [
        f"{tmp_path}/nope: no such directory"
    ]


def test_oversized_file_is_refused(tmp_path):
    path = write(tmp_path, BASE + "#" * (1024 * 1024))
    with pytest.raises(PolicyError) as caught:
        load_policy_file(path)
    assert str(caught.value) == f"{path}: file is larger than 1048576 bytes"


def test_shipped_example_policies_validate():
    services = sorted(p.service for p in load_policies(REPO / "policies"))
    assert services == ["chatterbox", "flaky", "web"]


def test_probe_and_notify_sections(tmp_path):
    policy = load_policy_file(
        write(
            tmp_path,
            BASE
            + """\
check:
  probe:
    http: {port: 8080, path: /health, status: 200-299}
    timeout: 2s
    period: 5s
    failure_threshold: 2
notify:
  on: [heal.gave_up]
  command: [/usr/local/bin/page, --team, ops]
  webhook: https://hooks.example.test/x
  timeout: 3s
""",
        )
    )
    probe = policy.check.probe
    assert (probe.kind, probe.port, probe.path, probe.url) == ("http", 8080, "/health", None)
    assert (probe.status_low, probe.status_high) == (200, 299)
    assert (probe.timeout_s, probe.period_s, probe.initial_delay_s) == (2.0, 5.0, 0.0)
    assert (probe.failure_threshold, probe.success_threshold) == (2, 1)
    assert policy.notify.on == frozenset({"heal.gave_up"})
    assert policy.notify.command == ("/usr/local/bin/page", "--team", "ops")
    assert (policy.notify.webhook, policy.notify.timeout_s) == ("https://hooks.example.test/x", 3.0)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            BASE + "check:\n  probe:\n    timeout: 1s\n",
            "p.yaml:4: at 'check.probe': expected exactly one of http, tcp, exec",
        ),
        (
            BASE + "check:\n  probe:\n    exec: pg_isready -q\n",
            "p.yaml:5: at 'check.probe.exec': expected a command as a list of strings (no shell), "
            "got 'pg_isready -q'",
        ),
        (
            BASE + "check:\n  probe:\n    tcp: {host: db}\n",
            "p.yaml:5: at 'check.probe.tcp.port': required",
        ),
        (
            BASE + "check:\n  probe:\n    http: {url: 'ftp://x/'}\n",
            "p.yaml:5: at 'check.probe.http.url': expected an http:// or https:// URL, got 'ftp://x/'",
        ),
        (
            BASE + "check:\n  probe:\n    http: {port: 80, status: 700}\n",
            "p.yaml:5: at 'check.probe.http.status': expected a status range within 100-599, "
            "got 700",
        ),
        (
            BASE + "notify:\n  on: [heal.failed]\n",
            "p.yaml:3: at 'notify': expected a command, a webhook, or both",
        ),
        (
            BASE + "notify:\n  command: [x]\n  on: [heal.started]\n",
            "p.yaml:5: at 'notify.on': expected events from heal.gave_up, heal.recovered, "
            "heal.failed, got ['heal.started']",
        ),
    ],
)
def test_probe_and_notify_errors(tmp_path, text, message):
    assert error_of(tmp_path, text) == message


def test_a_selector_policy_reads_its_labels_or_all(tmp_path):
    path = tmp_path / "auto.yaml"
    path.write_text("service: auto\nmatch:\n  selector: {autoheal: true, tier: front}\n")
    policy = load_policy_file(path)
    assert policy.is_selector and policy.match.selector == {"autoheal": "true", "tier": "front"}
    path.write_text("service: auto\nmatch: {selector: all}\n")
    assert load_policy_file(path).match.selector == {}
    path.write_text("service: web\nmatch: {name: web}\n")
    assert not load_policy_file(path).is_selector


def test_a_selector_policy_cannot_heal_missing(tmp_path):
    (tmp_path / "c.yml").write_text("services: {}\n")
    text = "service: auto\nmatch: {selector: all}\ncompose: {file: c.yml}\n"
    text += "heal: {on: [missing], scope: project}\n"
    assert (
        error_of(tmp_path, text)
        == "p.yaml:4: at 'heal.on': a selector policy cannot heal 'missing'"
    )


@pytest.mark.parametrize(
    ("probe", "where", "host"),
    [
        ("tcp: {host: " + "a" * 64 + ".example, port: 5432}", "tcp.host", "a" * 64 + ".example"),
        ("http: {url: 'http://bad..name/'}", "http.url", "bad..name"),
        ("http: {port: 80, host: 'db:5432'}", "http.host", "db:5432"),
    ],
)
def test_a_probe_host_no_resolver_accepts_is_refused_at_load(tmp_path, probe, where, host):
    """A probe to such a host could never run: refused with its file, line and field."""
    message = error_of(tmp_path, BASE + f"check:\n  probe:\n    {probe}\n")
    assert message.startswith(
        f"p.yaml:5: at 'check.probe.{where}': '{host}' is not a host name a resolver accepts"
    )
