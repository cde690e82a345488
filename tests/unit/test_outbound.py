"""outbound.py through webhooks and http probes, against real local HTTP servers: a receiver
cannot redirect the agent elsewhere, and the environment's proxy is not used."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from supervisor.config.model import NotifyPolicy, ProbePolicy
from supervisor.docker.containers import ContainerInfo
from supervisor.probe.checks import run_probe
from supervisor.publish.notifications import Notifications


class Server:
    """A local HTTP server that records every request and answers with `status`
    (and `location`, for a redirect)."""

    def __init__(self, status: int = 204, location: str | None = None) -> None:
        self.requests: list[tuple[str, str]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def answer(self):
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)
                server.requests.append((self.command, self.path))
                self.send_response(status)
                if location:
                    self.send_header("Location", location)
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_GET = do_POST = answer

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def servers():
    made: list[Server] = []

    def make(*args, **kwargs) -> Server:
        made.append(Server(*args, **kwargs))
        return made[-1]

    yield make
    for server in made:
        server.close()


def notify(webhook: str) -> None:
    notifications = Notifications(NotifyPolicy(webhook=webhook, timeout_s=2))
    try:
        notifications.send(None, "heal.recovered", service="web")
    finally:
        notifications._pool.shutdown(wait=True)


def test_a_webhook_redirect_is_not_followed(servers):
    inside = servers()  # what a receiver would like the agent to reach (a socket proxy)
    receiver = servers(307, location=f"{inside.url}/containers/x/stop")
    notify(f"{receiver.url}/hook")
    assert receiver.requests == [("POST", "/hook")] * 3  # tried, and tried again, as failed
    assert inside.requests == []


def test_a_webhook_ignores_the_environments_proxy(servers, monkeypatch):
    proxy, receiver = servers(), servers()
    for name in ("HTTP_PROXY", "http_proxy", "ALL_PROXY"):
        monkeypatch.setenv(name, proxy.url)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    notify(f"{receiver.url}/hook")
    assert receiver.requests == [("POST", "/hook")]
    assert proxy.requests == []


def test_an_http_probe_neither_follows_a_redirect_nor_takes_a_proxy(servers, monkeypatch):
    inside, proxy = servers(), servers()
    probed = servers(302, location=f"{inside.url}/")
    for name in ("HTTP_PROXY", "http_proxy"):
        monkeypatch.setenv(name, proxy.url)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    probe = ProbePolicy("http", url=f"{probed.url}/health", timeout_s=2)
    result = run_probe(probe, ContainerInfo("id", "web"), engine=None)
    assert result.ok  # 302 is inside the default 200-399
    assert probed.requests == [("GET", "/health")]
    assert inside.requests == [] and proxy.requests == []
