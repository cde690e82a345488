"""monitoring/alerts.yml, tested with `promtool test rules` on series shaped like a real
agent's: the label sets come from a scrape of an agent that healed, and failed to heal, a
real container. A rule that names a metric or a label the agent does not export fails here.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import urllib.request

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.conftest import file_healthcheck, health_of
from tests.integration.test_operations_real import free_port
from tests.support import REPO, wait_for, write_policy

pytestmark = pytest.mark.engine

RULES = REPO / "monitoring/alerts.yml"
JOB, INSTANCE = "docker-supervisor", "host-1:9464"
# Healthy at its first start only: after the agent restarts it, it stays unhealthy.
ONCE_HEALTHY = ["sh", "-c", "test -f /tmp/once || touch /tmp/once /tmp/healthy; exec sleep 86400"]


@pytest.fixture(scope="module")
def promtool():
    fetched = REPO / "build/tools/usr/bin/promtool"
    path = str(fetched) if fetched.exists() else shutil.which("promtool")
    assert path, "no promtool: `make test` fetches it (scripts/fetch-promtool build/tools)"
    return path


def scrape(port: int) -> list[tuple[str, dict[str, str]]]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        text = r.read().decode()
    return [
        (s.name, dict(s.labels)) for f in text_string_to_metric_families(text) for s in f.samples
    ]


@pytest.fixture(scope="module")
def scraped(client, image, tmp_path_factory, request):
    """Every sample name and label set of an agent that healed `metered` once and failed."""
    from tests.integration.conftest import Containers
    from tests.support import AgentProcess

    tmp = tmp_path_factory.mktemp("alerts")
    made = Containers(client, image, "alert-rules")
    c = made.run("metered", ONCE_HEALTHY, healthcheck=file_healthcheck())
    agent = None
    try:
        wait_for(lambda: health_of(client, c) == "healthy", 30, "healthy")
        heal = {"pause": "100ms", "ready_timeout": "3s", "max_restarts": 1, "window": "10m"}
        write_policy(
            tmp / "p", "metered", match={"name": c.name}, check={"interval": "1s"}, heal=heal
        )
        port = free_port()
        agent = AgentProcess(tmp / "p", tmp / "state", "--metrics-addr", f":{port}")
        agent.wait_event("service.status", service="metered", status="running")
        c.exec_run(["rm", "/tmp/healthy"])
        agent.wait_event("heal.failed", 60, service="metered")
        agent.wait_event("heal.gave_up", 60, service="metered")
        return scrape(port)
    finally:
        if agent is not None:
            agent.stop()
            agent.kill()
        made.remove_all()


def series(scraped, name: str, value_labels: dict[str, str] | None = None, **match: str) -> str:
    """The series as Prometheus stores it after scraping: the exported labels of the first
    sample named `name` that has `match`, then job and instance; `value_labels` changes some."""
    for sample, labels in scraped:
        if sample == name and all(labels.get(k) == v for k, v in match.items()):
            labels = {**labels, **(value_labels or {}), "job": JOB, "instance": INSTANCE}
            inner = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
            return f"{name}{{{inner}}}"
    raise AssertionError(f"the agent exports no {name} with {match}")


def alert(severity: str, summary: str, description: str, **labels: str) -> dict:
    return {
        "exp_labels": {"severity": severity, **labels},
        "exp_annotations": {"summary": summary, "description": description},
    }


def test_the_rules_name_only_what_the_agent_exports(scraped, promtool):
    subprocess.run([promtool, "check", "rules", str(RULES)], check=True, capture_output=True)
    exported = {name for name, _ in scraped}
    exprs = [r["expr"] for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"]]
    named = {n for e in exprs for n in re.findall(r"\b(supervisor_[a-z_]+)", e)}
    assert named and named <= exported, named - exported


def test_promtool_fires_each_alert_on_series_shaped_like_the_agents(scraped, promtool, tmp_path):
    m = {"service": "metered"}
    where = {"job": JOB, "instance": INSTANCE}
    gave_up = series(scraped, "supervisor_service_flag", flag="gave_up", **m)
    failed = series(scraped, "supervisor_heals_total", result="failed", **m)
    error = series(scraped, "supervisor_service_status", status="error", **m)
    held = series(scraped, "supervisor_service_flag", flag="held", **m)
    held_error = series(scraped, "supervisor_service_status", {"service": "kept"}, status="error")
    held_flag = series(scraped, "supervisor_service_flag", {"service": "kept"}, flag="held")
    engine = series(scraped, "supervisor_engine_up")
    state = series(scraped, "supervisor_state_writable")
    checks = series(scraped, "supervisor_checks_total", **m)
    up = f'up{{instance="{INSTANCE}",job="{JOB}"}}'
    tests = [
        {  # given up: one alert per service, after a minute
            "input_series": [{"series": gave_up, "values": "0 1x10"}],
            "alert_rule_test": [
                {"eval_time": "1m", "alertname": "SupervisorGaveUp", "exp_alerts": []},
                {
                    "eval_time": "5m",
                    "alertname": "SupervisorGaveUp",
                    "exp_alerts": [
                        alert(
                            "critical",
                            "metered: crash loop, the agent gave up healing it",
                            f"metered on {INSTANCE} used up its restart budget and is left as it "
                            "is. Fix it, then `docker-supervisor reset metered`.",
                            flag="gave_up",
                            **m,
                            **where,
                        )
                    ],
                },
            ],
        },
        {  # two failed heals inside 30 minutes
            "input_series": [{"series": failed, "values": "0 0 1 1 1 2 2"}],
            "alert_rule_test": [
                {"eval_time": "3m", "alertname": "SupervisorHealsFailing", "exp_alerts": []},
                {
                    "eval_time": "6m",
                    "alertname": "SupervisorHealsFailing",
                    "exp_alerts": [
                        alert(
                            "warning",
                            "metered: heals are failing",
                            f"At least two heal cycles of metered on {INSTANCE} ended without "
                            "a healthy container in the last 30 minutes.",
                            result="failed",
                            **m,
                            **where,
                        )
                    ],
                },
            ],
        },
        {  # down for 10 minutes: alerted unless an operator holds it
            "input_series": [
                {"series": error, "values": "1x20"},
                {"series": held, "values": "0x20"},
                {"series": held_error, "values": "1x20"},
                {"series": held_flag, "values": "1x20"},
            ],
            "alert_rule_test": [
                {"eval_time": "5m", "alertname": "SupervisorServiceDown", "exp_alerts": []},
                {
                    "eval_time": "15m",
                    "alertname": "SupervisorServiceDown",
                    "exp_alerts": [
                        alert(
                            "warning",
                            "metered: not running for 10 minutes",
                            f"metered on {INSTANCE} has been stopped or in error for 10 minutes "
                            "without an operator's hold (`docker-supervisor status` says why).",
                            **m,
                            **where,
                        )
                    ],
                },
            ],
        },
        {  # the engine away, the agent itself down, then gone, then stuck
            "input_series": [
                {"series": engine, "values": "1 0x10"},
                {"series": up, "values": "1x12 0x5"},
                {"series": checks, "values": "0 10x20"},  # no check after the first minute
            ],
            "alert_rule_test": [
                {
                    "eval_time": "4m",
                    "alertname": "SupervisorEngineUnreachable",
                    "exp_alerts": [
                        alert(
                            "critical",
                            "the Docker engine does not answer the agent",
                            f"The agent on {INSTANCE} cannot reach the Docker engine and heals "
                            "nothing until it can.",
                            **where,
                        )
                    ],
                },
                {"eval_time": "4m", "alertname": "SupervisorStale", "exp_alerts": []},
                {
                    "eval_time": "12m",
                    "alertname": "SupervisorStale",
                    "exp_alerts": [
                        alert(
                            "critical",
                            "docker-supervisor answers but checks nothing",
                            f"The agent on {INSTANCE} serves metrics but has made no check in 5 "
                            "minutes: its scheduler is stuck.",
                            **where,
                        )
                    ],
                },
                {
                    "eval_time": "16m",
                    "alertname": "SupervisorDown",
                    "exp_alerts": [
                        alert(
                            "critical",
                            "docker-supervisor is down",
                            f"Prometheus cannot scrape the agent on {INSTANCE}.",
                            **where,
                        )
                    ],
                },
                {"eval_time": "16m", "alertname": "SupervisorAbsent", "exp_alerts": []},
            ],
        },
        {  # the state file cannot be written (a full disk) for a while
            "input_series": [{"series": state, "values": "1 0x5 1x5"}],
            "alert_rule_test": [
                {"eval_time": "1m", "alertname": "SupervisorStateUnwritable", "exp_alerts": []},
                {
                    "eval_time": "3m",
                    "alertname": "SupervisorStateUnwritable",
                    "exp_alerts": [
                        alert(
                            "critical",
                            "docker-supervisor cannot write its state file",
                            f"The agent on {INSTANCE} cannot write its state file (a full or "
                            "read-only filesystem) and heals nothing until it can: a stop whose "
                            "intent is not on disk could be left down by a restart of the agent.",
                            **where,
                        )
                    ],
                },
                {"eval_time": "8m", "alertname": "SupervisorStateUnwritable", "exp_alerts": []},
            ],
        },
        {  # no agent scraped at all
            "input_series": [],
            "alert_rule_test": [
                {
                    "eval_time": "11m",
                    "alertname": "SupervisorAbsent",
                    "exp_alerts": [
                        alert(
                            "critical",
                            "no docker-supervisor is scraped",
                            "No target of job docker-supervisor exists: nothing supervises the "
                            "host.",
                            job=JOB,
                        )
                    ],
                }
            ],
        },
    ]
    for test in tests:
        test["interval"] = "1m"
    spec = tmp_path / "alerts_test.yml"
    spec.write_text(
        yaml.safe_dump({"rule_files": [str(RULES)], "evaluation_interval": "1m", "tests": tests})
    )
    done = subprocess.run([promtool, "test", "rules", str(spec)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    # The same file with one expectation wrong fails: promtool does compare.
    tests[0]["alert_rule_test"][1]["exp_alerts"][0]["exp_labels"]["service"] = "other"
    spec.write_text(
        yaml.safe_dump({"rule_files": [str(RULES)], "evaluation_interval": "1m", "tests": tests})
    )
    wrong = subprocess.run([promtool, "test", "rules", str(spec)], capture_output=True, text=True)
    assert wrong.returncode == 1 and "SupervisorGaveUp" in wrong.stdout + wrong.stderr
