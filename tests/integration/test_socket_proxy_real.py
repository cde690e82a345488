"""The agent through a least-privilege Docker socket proxy: haproxy (Debian's) on a unix
socket, allowing exactly the Engine API calls the README lists, path by path and method by
method, and denying the rest with 403. The healing tests run again here with the agent's
DOCKER_HOST on the proxy; afterwards the proxy must have passed their calls and denied none.
"""

from __future__ import annotations

import csv
import io
import shutil
import socket
import subprocess

import docker
import pytest

# Run again here, through the proxy: heals, a crash loop, exec probes, a manual stop.
from tests.integration.test_events_real import (
    test_a_manual_stop_is_left_alone_but_a_crash_is_healed,  # noqa: F401
)
from tests.integration.test_healing_real import (
    test_crash_loop_gives_up_after_max_restarts,  # noqa: F401
    test_unhealthy_container_is_healed,  # noqa: F401
)
from tests.integration.test_probes_real import (
    test_exec_probe_runs_inside_the_container,  # noqa: F401
)
from tests.support import engine_socket, wait_for

pytestmark = pytest.mark.engine

# The README's list ("A Docker socket proxy"), as haproxy rules; ids and names in paths.
ID = "[a-zA-Z0-9][a-zA-Z0-9_.-]*"
CONFIG = """\
global
    stats socket {admin} mode 600 level admin
defaults
    mode http
    timeout connect 5s
    timeout client 1h
    timeout server 1h
frontend engine
    bind unix@{listen} mode 600
    acl ping path_reg ^(/v[0-9.]+)?/_ping$
    acl read path_reg ^(/v[0-9.]+)?/(version|containers/json|events)$
    acl read path_reg ^(/v[0-9.]+)?/(containers|exec)/{id}/json$
    acl act path_reg ^(/v[0-9.]+)?/(containers/{id}/(start|stop|restart|exec)|exec/{id}/start)$
{extra}
    http-request allow if {{ method GET HEAD }} ping
    http-request allow if {{ method GET }} read
    http-request allow if {{ method POST }} act
    http-request deny deny_status 403
    default_backend engine
backend engine
    server dockerd unix@{engine}
"""


class SocketProxy:
    def __init__(self, directory, extra: str = "") -> None:
        """`extra`: haproxy lines ahead of the README's rules (a test's own denial)."""
        self.listen = directory / "docker.sock"
        self.admin = directory / "admin.sock"
        config = directory / "haproxy.cfg"
        config.write_text(
            CONFIG.format(
                admin=self.admin, listen=self.listen, id=ID, engine=engine_socket(), extra=extra
            )
        )
        self.proc = subprocess.Popen(
            [shutil.which("haproxy") or "haproxy", "-db", "-f", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        wait_for(lambda: self.listen.exists() and self.admin.exists(), 10, "haproxy to listen")
        self.url = f"unix://{self.listen}"

    def counts(self) -> dict[str, int]:
        """The frontend's requests so far: all of them, and those denied."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as admin:
            admin.connect(str(self.admin))
            admin.sendall(b"show stat\n")
            data = b""
            while chunk := admin.recv(65536):
                data += chunk
        rows = csv.DictReader(io.StringIO(data.decode().lstrip("# ")))
        [row] = [r for r in rows if r["pxname"] == "engine" and r["svname"] == "FRONTEND"]
        return {"requests": int(row["req_tot"] or 0), "denied": int(row["dreq"] or 0)}

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


@pytest.fixture(scope="module")
def proxy(tmp_path_factory):
    assert shutil.which("haproxy"), (
        "haproxy is needed (Debian package haproxy; make test installs it)"
    )
    made = SocketProxy(tmp_path_factory.mktemp("proxy"))
    yield made
    made.close()


@pytest.fixture
def agent_env(proxy):
    """The agents' only way to the engine is the proxy; afterwards, it denied them nothing."""
    before = proxy.counts()
    yield {"DOCKER_HOST": proxy.url}
    after = proxy.counts()
    assert after["requests"] > before["requests"], "the agent's calls did not go through the proxy"
    assert after["denied"] == before["denied"], "the agent made a call outside the README's list"


def test_the_proxy_denies_what_is_not_on_the_list(proxy):
    """The control: the rules do deny (else the healing tests above would prove nothing)."""
    client = docker.DockerClient(base_url=proxy.url, version="1.41", timeout=10)
    try:
        assert client.ping()
        before = proxy.counts()["denied"]
        with pytest.raises(docker.errors.APIError) as caught:
            client.images.list()
        assert caught.value.status_code == 403
        with pytest.raises(docker.errors.APIError):
            client.api.remove_container("nothing-here")
        assert proxy.counts()["denied"] == before + 2
    finally:
        client.close()
