"""The demo stack's lifecycle through ServiceManager and blanket compose commands."""

import json

import pytest

from supervisor import ServiceManager, Status, load_policy_file
from supervisor.config.model import ComposeRef
from supervisor.docker.compose import Compose, build_base_argv, run_compose
from tests.integration.conftest import RUN_ID
from tests.support import REPO, run_cli, wait_for, write_policy

pytestmark = pytest.mark.engine

ONEOFF = "com.docker.compose.oneoff=True"

DEMO = REPO / "compose/demo/compose.yml"


@pytest.fixture
def demo_web(image, compose_cmd, tmp_path):
    """The demo's web policy, pointed at a project of this test run's own."""
    project = f"dst-{RUN_ID}-demo"
    policy = load_policy_file(REPO / "policies/demo-web.yaml")
    policy = type(policy)(**{**policy.__dict__, "compose": ComposeRef(DEMO, project)})
    yield policy
    run_compose([*build_base_argv(compose_cmd, DEMO, project), "down", "--timeout", "1"], 120)


def test_start_status_stop(demo_web, compose_cmd, caplog):
    manager = ServiceManager(demo_web, compose=Compose(compose_cmd))
    assert manager.get_service_status() is Status.STOPPED
    assert manager.is_service_healthy() is False

    assert manager.start_service() is True
    assert manager.get_service_status() is Status.RUNNING
    assert manager.is_service_healthy() is True
    seen = manager.observe()
    assert seen.container.name == f"{demo_web.compose.project}-web-1"
    first_id = seen.container.id

    with caplog.at_level("INFO", logger="supervisor"):
        assert manager.start_service() is True  # already healthy: reused, not recreated
    assert [r.event for r in caplog.records] == ["service.reused"]
    assert manager.observe().container.id == first_id

    assert manager.restart_service() is True
    assert manager.observe().container.id == first_id
    assert manager.is_service_healthy() is True

    assert manager.stop_service() is True
    assert manager.get_service_status() is Status.STOPPED
    assert manager.observe().reason == "exited"


def test_gpu_example_compose_file_is_accepted(compose_cmd):
    policy = load_policy_file(REPO / "policies/chatterbox.yaml")
    result = Compose(compose_cmd).config(policy.compose.file, policy.compose.project)
    assert result.argv[-2:] == ["config", "--quiet"]


def stack_file(directory, image, edited: bool = False):
    """app (healthy while /tmp/healthy exists) and side, a neighbour nobody supervises;
    `edited`: both carry an edit nobody has deployed yet."""
    edit = '\n    environment: {EDITED: "1"}' if edited else ""
    directory.mkdir(exist_ok=True)
    (directory / "compose.yml").write_text(f"""\
services:
  app:
    image: {image}
    pull_policy: never
    init: true
    command: ["sh", "-c", "touch /tmp/healthy; trap 'exit 0' TERM; sleep 86400 & wait"]
    labels: {{docker-supervisor.test: "{RUN_ID}"}}{edit}
    healthcheck:
      test: ["CMD", "test", "-f", "/tmp/healthy"]
      interval: 1s
      retries: 1
  side:
    image: {image}
    pull_policy: never
    init: true
    command: ["sh", "-c", "trap 'exit 0' TERM; sleep 86400 & wait"]
    labels: {{docker-supervisor.test: "{RUN_ID}"}}{edit}
""")
    return directory / "compose.yml"


@pytest.fixture
def stack(client, image, compose_cmd, tmp_path, request):
    """The stack, up and healthy; taken down (volumes kept) afterwards."""
    project = f"dst-{RUN_ID}-{request.node.name[5:30].replace('_', '-')}"
    file = stack_file(tmp_path / "stack", image)
    base = build_base_argv(compose_cmd, file, project)
    run_compose([*base, "up", "-d", "--wait"], 120)
    yield file, project
    run_compose([*base, "down", "--timeout", "1"], 120)


def stack_containers(client, project) -> dict:
    label = f"com.docker.compose.project={project}"
    found = client.containers.list(all=True, filters={"label": label})
    return {
        c.labels["com.docker.compose.service"]: c
        for c in found
        if c.labels.get("com.docker.compose.oneoff") != "True"  # `compose run`'s: apart
    }


def heal_app(client, agents, tmp_path, file, project, *extra, **heal):
    write_policy(
        tmp_path / "p",
        "app",
        match={"compose_service": "app"},
        compose={"file": str(file), "project": project},
        check={"interval": "1s"},
        heal={"pause": "200ms", "ready_timeout": "30s", **heal},
    )
    agent = agents.start(tmp_path / "p", tmp_path / "state", *extra)
    agent.wait_event("service.status", service="app", status="running")
    stack_containers(client, project)["app"].exec_run(["rm", "/tmp/healthy"])
    return agent


def test_a_compose_heal_touches_its_service_only_and_deploys_no_edit(
    client, image, agents, tmp_path, stack
):
    file, project = stack
    before = {name: c.attrs for name, c in stack_containers(client, project).items()}
    stack_file(file.parent, image, edited=True)  # an edit nobody deployed yet
    agent = heal_app(client, agents, tmp_path, file, project, scope="compose")
    assert agent.wait_event("heal.started", service="app")["scope"] == "compose"
    agent.wait_event("heal.recovered", service="app")
    after = {name: c.attrs for name, c in stack_containers(client, project).items()}
    # app: the same container, stopped and started, without the edit.
    assert after["app"]["Id"] == before["app"]["Id"]
    assert after["app"]["State"]["StartedAt"] != before["app"]["State"]["StartedAt"]
    assert "EDITED=1" not in after["app"]["Config"]["Env"]
    # side: not stopped, not recreated.
    assert after["side"]["Id"] == before["side"]["Id"]
    assert after["side"]["State"]["StartedAt"] == before["side"]["State"]["StartedAt"]
    assert agent.events("heal.failed") == []


def test_a_project_heal_restarts_the_whole_stack(client, agents, tmp_path, stack):
    file, project = stack
    before = {name: c.attrs for name, c in stack_containers(client, project).items()}
    agent = heal_app(client, agents, tmp_path, file, project, scope="project")
    assert agent.wait_event("heal.started", service="app")["scope"] == "project"
    agent.wait_event("heal.recovered", service="app")
    after = {name: c.attrs for name, c in stack_containers(client, project).items()}
    for name in ("app", "side"):
        assert after[name]["State"]["Running"] is True
        assert after[name]["State"]["StartedAt"] != before[name]["State"]["StartedAt"]
    assert agent.events("heal.failed") == []


def test_a_project_heal_starts_only_what_it_took_down(client, image, compose_cmd, agents, tmp_path):
    """A stack with a one-shot `init` that ran and exited, `side`, which an operator
    stopped, and a `compose run` one-off: a `scope: project` heal of app starts app again,
    leaves init and side down, and the one-off running as it was."""
    project = f"dst-{RUN_ID}-oneshot"
    file = stack_file(tmp_path / "stack", image)
    file.write_text(
        file.read_text()
        + f"""\
  init:
    image: {image}
    pull_policy: never
    command: ["true"]
    labels: {{docker-supervisor.test: "{RUN_ID}"}}
"""
    )
    base = build_base_argv(compose_cmd, file, project)
    try:
        run_compose([*base, "up", "-d", "--wait", "app", "side"], 120)
        run_compose([*base, "up", "-d", "init"], 120)
        run_compose([*base, "run", "-d", "--no-deps", "side"], 120)
        wait_for(
            lambda: stack_containers(client, project)["init"].attrs["State"]["Status"] == "exited",
            30,
            "the one-shot to finish",
        )
        stack_containers(client, project)["side"].stop(timeout=1)
        oneoff_label = {"label": [f"com.docker.compose.project={project}", ONEOFF]}
        (oneoff,) = client.containers.list(filters=oneoff_label)
        before = {name: c.attrs for name, c in stack_containers(client, project).items()}
        agent = heal_app(client, agents, tmp_path, file, project, scope="project")
        agent.wait_event("heal.recovered", service="app")
        after = {name: c.attrs for name, c in stack_containers(client, project).items()}
        assert after["app"]["State"]["Running"] is True
        assert after["app"]["State"]["StartedAt"] != before["app"]["State"]["StartedAt"]
        for name in ("init", "side"):
            assert after[name]["State"]["Running"] is False, name
            assert after[name]["State"]["StartedAt"] == before[name]["State"]["StartedAt"], name
        oneoff_before = oneoff.attrs["State"]
        oneoff.reload()
        assert oneoff.attrs["State"]["Running"] is True
        assert oneoff.attrs["State"]["StartedAt"] == oneoff_before["StartedAt"]
        # Nothing of theirs was left to the keeper either.
        assert agent.events("heal.resumed") == []
    finally:
        run_compose([*base, "down", "--timeout", "1"], 120)


def test_a_failed_compose_start_is_reported_once_then_retried_with_backoff(
    client, image, agents, tmp_path, stack
):
    file, project = stack
    good = file.read_text()
    agent = heal_app(
        client,
        agents,
        tmp_path,
        file,
        project,
        "--log-level",
        "DEBUG",
        scope="compose",
        pause="2s",
        backoff={"initial": "1s", "factor": 2, "max": "8s", "jitter": 0},
    )
    agent.wait_event("heal.stopped", service="app")
    file.write_text(good.replace("services:", "services: [", 1))  # a bad edit, mid-pause
    failed = agent.wait_event("heal.failed", service="app")
    assert failed["reason"] == "start_failed"
    assert "yaml" in failed["detail"]  # compose's own words
    agent.wait_event("heal.resume_retrying", 30, service="app", failures=3)
    retries = agent.events("heal.resume_retrying", service="app")
    assert [(r["failures"], r["retry_in_s"]) for r in retries[:2]] == [(2, 2.0), (3, 4.0)]
    assert all("yaml" in r["error"] for r in retries)
    assert agent.events("heal.resume_failed") == []  # reported once: by the cycle
    file.write_text(good)  # fixed
    agent.wait_event("heal.resumed", 30, service="app")
    agent.wait_event("service.status", 30, service="app", status="running")
    containers = stack_containers(client, project)
    assert containers["app"].attrs["State"]["Running"] is True
    assert containers["side"].attrs["State"]["Running"] is True  # never stopped
    assert len(agent.events("heal.failed")) == 1


def test_a_stack_up_under_another_project_name_is_healed_in_its_own_project(
    client, image, compose_cmd, agents, tmp_path
):
    """`docker compose -p prod up -d` from a directory named otherwise, and a policy with
    compose.file, scope compose and no project: the heal acts on prod (the container's own
    project, from its labels), creates no second stack, and a namesake `app` of another
    stack on the host neither matches nor makes the service ambiguous."""
    prod = f"dst-{RUN_ID}-prod"
    file = stack_file(tmp_path / "checkout", image)
    other_file = stack_file(tmp_path / "elsewhere", image)
    bases = [
        build_base_argv(compose_cmd, file, prod),
        build_base_argv(compose_cmd, other_file, f"dst-{RUN_ID}-elsewhere"),
        build_base_argv(compose_cmd, file, None),  # what compose would derive: "checkout"
    ]
    try:
        for base in bases[:2]:
            run_compose([*base, "up", "-d", "--wait"], 120)
        before = stack_containers(client, prod)["app"]
        write_policy(
            tmp_path / "p",
            "app",
            match={"compose_service": "app"},
            compose={"file": str(file)},
            check={"interval": "1s"},
            heal={"pause": "200ms", "ready_timeout": "30s", "scope": "compose"},
        )
        agent = agents.start(tmp_path / "p", tmp_path / "state")
        running = agent.wait_event("service.status", service="app", status="running")
        assert running["container"] == before.name
        before.exec_run(["rm", "/tmp/healthy"])

        agent.wait_event("heal.recovered", service="app")
        apps = client.containers.list(
            all=True,
            filters={
                "label": ["com.docker.compose.service=app", f"docker-supervisor.test={RUN_ID}"]
            },
        )
        projects = sorted(c.labels["com.docker.compose.project"] for c in apps)
        assert projects == sorted([prod, f"dst-{RUN_ID}-elsewhere"])  # no third stack
        after = stack_containers(client, prod)["app"]
        assert (
            after.id == before.id
            and after.attrs["State"]["StartedAt"] != before.attrs["State"]["StartedAt"]
        )
        assert agent.events("service.status", service="app", reason="ambiguous") == []
    finally:
        for base in bases:
            run_compose([*base, "down", "--timeout", "1"], 120)


def test_validate_refuses_a_policy_whose_compose_file_is_not_its_containers_project(
    client, image, compose_cmd, tmp_path
):
    """The stack runs as prod from one checkout; a policy names another checkout's file for
    prod's container: `validate` says so at compose.file and exits 2 (the agent would
    refuse to heal it); a policy naming prod's own file is ok."""
    prod = f"dst-{RUN_ID}-validate"
    file = stack_file(tmp_path / "checkout", image)
    other_file = stack_file(tmp_path / "elsewhere", image)
    base = build_base_argv(compose_cmd, file, prod)
    try:
        run_compose([*base, "up", "-d", "--wait"], 120)
        app = stack_containers(client, prod)["app"]
        policies = tmp_path / "p"
        write_policy(policies, "good", match={"name": app.name}, compose={"file": str(file)})
        write_policy(policies, "wrong", match={"name": app.name}, compose={"file": str(other_file)})
        done = run_cli("validate", str(policies))
        assert done.returncode == 2, done.stderr
        assert done.stderr == (
            f"{policies}/wrong.yaml:5: at 'compose.file': its container {app.name} is of compose "
            f"project '{prod}' (from {file}); the agent would refuse to heal it\n"
        )
        assert done.stdout == f"{policies}/good.yaml: ok: service good\n"
    finally:
        run_compose([*base, "down", "--timeout", "1"], 120)


@pytest.mark.parametrize("scope", ["compose", "project"])
def test_a_stack_taken_down_during_a_heal_is_not_brought_back(
    client, compose_cmd, agents, tmp_path, stack, scope
):
    """`docker compose down` in the heal's pause: the heal's start finds its container gone
    and ends (container_gone) without `up`, which would create the stack anew on fresh
    volumes; nothing is left owed for the keeper to bring it back with."""
    file, project = stack
    agent = heal_app(client, agents, tmp_path, file, project, scope=scope, pause="6s")
    agent.wait_event("heal.stopped", service="app")
    run_compose([*build_base_argv(compose_cmd, file, project), "down", "--timeout", "1"], 120)
    failed = agent.wait_event("heal.failed", service="app", timeout_s=30)
    assert failed["reason"] == "container_gone"
    agent.wait_event("service.status", service="app", reason="missing")
    state = tmp_path / "state" / "state.json"
    # What the heal owed (the neighbour, for scope project) is judged by the keeper within
    # its round (2 s) and dropped: nothing is left for this agent or the next.
    wait_for(lambda: json.loads(state.read_text())["intents"] == [], 15, "nothing owed")
    agent.stop()
    assert json.loads(state.read_text())["intents"] == []
    assert stack_containers(client, project) == {}
