"""Dependents: after `vpn` is healed, `app`, which lives in vpn's network namespace, is
restarted and reaches the network again, checked from inside app."""

import pytest

from supervisor.docker.compose import build_base_argv, run_compose
from tests.integration.conftest import RUN_ID, by_service, health_of
from tests.support import wait_for, write_policy

pytestmark = pytest.mark.engine


def test_a_service_sharing_the_healed_network_namespace_gets_it_back(
    client, image, compose_cmd, agents, tmp_path
):
    project = f"dst-{RUN_ID}-deps"
    stack = tmp_path / "stack"
    stack.mkdir()
    (stack / "compose.yml").write_text(f"""\
x-base: &base
  image: {image}
  pull_policy: never
  init: true
  labels: {{docker-supervisor.test: "{RUN_ID}"}}
services:
  web:
    <<: *base
    command: ["sh", "-c", "echo up > /www/index.html; httpd -f -p 8080 -h /www"]
  vpn:
    <<: *base
    command: ["sh", "-c", "touch /tmp/healthy; trap 'exit 0' TERM; sleep 86400 & wait"]
    healthcheck:
      test: ["CMD", "test", "-f", "/tmp/healthy"]
      interval: 1s
      retries: 1
  app:
    <<: *base
    command: ["sh", "-c", "trap 'exit 0' TERM; sleep 86400 & wait"]
    network_mode: "service:vpn"
    depends_on: [vpn]
""")
    base = build_base_argv(compose_cmd, stack / "compose.yml", project)
    try:
        run_compose([*base, "up", "-d", "--wait"], 180)

        vpn, app = by_service(client, project, "vpn"), by_service(client, project, "app")

        def app_reaches_web() -> bool:
            # (busybox's own wget -T crashes; its timeout applet bounds the try instead)
            code, _ = app.exec_run(
                ["timeout", "3", "wget", "-q", "-O", "/dev/null", "http://web:8080/"]
            )
            return code == 0

        assert app_reaches_web()
        app_started = app.attrs["State"]["StartedAt"]
        write_policy(
            tmp_path / "p",
            "vpn",
            match={"compose_service": "vpn"},
            compose={"file": str(stack / "compose.yml"), "project": project},
            check={"interval": "1s"},
            heal={
                "pause": "200ms",
                "ready_timeout": "30s",
                "stop_timeout": "2s",
                "dependents": "restart",
            },
        )
        agent = agents.start(tmp_path / "p", tmp_path / "state")
        agent.wait_event("service.status", service="vpn", status="running")
        vpn.exec_run(["rm", "/tmp/healthy"])
        agent.wait_event("heal.recovered", service="vpn")
        dependent = agent.wait_event("heal.dependent", service="vpn")
        assert (dependent["dependent"], dependent["why"], dependent["action"]) == (
            app.name,
            "shares_network",
            "restarted",
        )
        assert len(agent.events("heal.dependent")) == 1  # web depends on nothing
        assert health_of(client, vpn) == "healthy"
        app.reload()
        assert app.attrs["State"]["StartedAt"] != app_started
        wait_for(app_reaches_web, 20, "app to reach web through vpn's namespace again")
    finally:
        run_compose([*base, "down", "--timeout", "1"], 120)
