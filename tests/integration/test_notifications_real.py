"""Notifications on real heals: a command hook, a webhook to a real local server, and a
webhook that never answers, which must not slow the heal."""

import json
import socket
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.integration.conftest import file_healthcheck, health_of
from tests.support import FAST_HEAL, wait_for, write_policy

pytestmark = pytest.mark.engine


@pytest.fixture
def webhook_server():
    received: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append(
                {"path": self.path, "json": json.loads(body), "type": self.headers["Content-Type"]}
            )
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook", received
    server.shutdown()
    server.server_close()


def test_command_and_webhook_hear_of_the_recovery(
    client, containers, agents, tmp_path, webhook_server
):
    url, received = webhook_server
    out = tmp_path / "env.json"
    command = [
        sys.executable,
        "-c",
        "import json, os, sys; json.dump({k: v for k, v in os.environ.items() "
        "if k.startswith('SUPERVISOR_')}, open(sys.argv[1], 'w'))",
        str(out),
    ]
    c = containers.run("told", healthcheck=file_healthcheck())
    wait_for(lambda: health_of(client, c) == "healthy", 30, "healthy")
    write_policy(
        tmp_path / "p",
        "told",
        match={"name": c.name},
        check={"interval": "1s"},
        heal=FAST_HEAL,
        notify={"on": ["heal.recovered"], "command": command, "webhook": url, "timeout": "5s"},
    )
    agent = agents.start(tmp_path / "p", tmp_path / "state")
    agent.wait_event("service.status", service="told", status="running")
    c.exec_run(["rm", "/tmp/healthy"])
    agent.wait_event("heal.recovered", service="told")

    env = wait_for(
        lambda: out.exists() and json.loads(out.read_text() or "null"), 10, "the command hook"
    )
    assert env == {
        "SUPERVISOR_SERVICE": "told",
        "SUPERVISOR_EVENT": "heal.recovered",
        "SUPERVISOR_REASON": "unhealthy",
        "SUPERVISOR_ATTEMPT": "1",
        "SUPERVISOR_HOST": socket.gethostname(),
    }
    wait_for(lambda: received, 10, "the webhook")
    [hook] = received
    assert (hook["path"], hook["type"]) == ("/hook", "application/json")
    assert {k: hook["json"][k] for k in ("event", "service", "attempt", "host", "container")} == {
        "event": "heal.recovered",
        "service": "told",
        "attempt": 1,
        "host": socket.gethostname(),
        "container": c.name,
    }
    assert agent.events("notify.failed") == []


def test_webhooks_that_hang_or_are_refused_do_not_slow_the_heal(
    client, containers, agents, tmp_path
):
    silent = socket.socket()  # accepts connections (backlog) and never answers
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    closed_port = closed.getsockname()[1]
    closed.close()  # nothing listens there any more
    try:
        made = {}
        for name, port in (("hang", silent.getsockname()[1]), ("refused", closed_port)):
            c = made[name] = containers.run(name, healthcheck=file_healthcheck())
            wait_for(lambda c=c: health_of(client, c) == "healthy", 30, "healthy")
            write_policy(
                tmp_path / "p",
                name,
                match={"name": c.name},
                check={"interval": "1s"},
                heal=FAST_HEAL,
                notify={
                    "webhook": f"http://127.0.0.1:{port}/",
                    "timeout": "3s",
                    "on": ["heal.recovered"],
                },
            )
        agent = agents.start(tmp_path / "p", tmp_path / "state")
        for name, c in made.items():
            agent.wait_event("service.status", service=name, status="running")
            c.exec_run(["rm", "/tmp/healthy"])
        for name in made:
            assert agent.wait_event("heal.recovered", service=name)["duration_s"] < 5
        made["hang"].exec_run(["rm", "/tmp/healthy"])  # again, while its first webhook hangs
        wait_for(
            lambda: len(agent.events("heal.recovered", service="hang")) == 2,
            30,
            "a second recovery",
        )
        refused = agent.wait_event("notify.failed", timeout_s=30, service="refused")
        assert refused["channel"] == "webhook" and "ConnectionError" in refused["error"]
        hung = agent.wait_event("notify.failed", timeout_s=30, service="hang")
        assert "Timeout" in hung["error"]
    finally:
        silent.close()


def test_the_default_notifies_policies_without_their_own(
    client, containers, agents, tmp_path, webhook_server
):
    url, received = webhook_server
    c = containers.run("defaulted", healthcheck=file_healthcheck())
    wait_for(lambda: health_of(client, c) == "healthy", 30, "healthy")
    write_policy(
        tmp_path / "p",
        "defaulted",
        match={"name": c.name},
        check={"interval": "1s"},
        heal=FAST_HEAL,
    )
    (tmp_path / "default.yaml").write_text(f"webhook: {url}\non: [heal.recovered]\n")
    agent = agents.start(
        tmp_path / "p", tmp_path / "state", "--notify", str(tmp_path / "default.yaml")
    )
    agent.wait_event("service.status", service="defaulted", status="running")
    c.exec_run(["rm", "/tmp/healthy"])
    agent.wait_event("heal.recovered", service="defaulted")
    wait_for(lambda: received, 10, "the default webhook")
    assert received[0]["json"]["service"] == "defaulted"
