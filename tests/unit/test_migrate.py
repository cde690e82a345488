"""docker-autoheal's settings read and turned into policies, without an engine."""

from __future__ import annotations

from pathlib import Path

import pytest

from supervisor.config.migrate import (
    Migration,
    merged,
    policies,
    read_assignments,
    read_env_file,
    stop_timeouts,
    write,
)
from supervisor.config.policy import load_policy_file
from supervisor.docker.containers import ContainerInfo
from supervisor.errors import UsageError


def load(tmp_path: Path, texts: dict[str, str]) -> dict:
    out = {}
    for name, text in texts.items():
        (tmp_path / name).write_text(text)
        out[name] = load_policy_file(tmp_path / name)
    return out


def test_autoheals_defaults_become_one_selector_policy(tmp_path):
    texts = policies(Migration(merged()))
    [policy] = load(tmp_path, texts).values()
    assert policy.service == "autoheal"
    assert policy.match.selector == {"autoheal": "true"}
    assert policy.check.interval_s == 5.0 and policy.check.grace_s == 0.0
    assert policy.heal.on == frozenset({"unhealthy"}) and policy.heal.stop_timeout_s == 10.0
    assert policy.notify is None
    assert texts["autoheal.yaml"].startswith(
        "# yaml-language-server: $schema=../policy.schema.json\n"
    )
    assert "# From docker-autoheal's settings (autoheal's defaults)" in texts["autoheal.yaml"]


def test_each_setting_maps_or_is_said_and_the_later_source_wins(tmp_path):
    env = tmp_path / "autoheal.env"
    env.write_text(
        "# autoheal\n"
        "AUTOHEAL_CONTAINER_LABEL=all\n"
        "export AUTOHEAL_INTERVAL='30'\n"
        'WEBHOOK_URL="https://hooks.example.com/T0/B0"\n'
        "\n"
        "CURL_TIMEOUT=30\n"
        "AUTOHEAL_START_PERIOD=60\n"
        "AUTOHEAL_FANCY=1\n"
    )
    settings = merged(read_env_file(env), read_assignments(["AUTOHEAL_INTERVAL=15"], "-e"))
    migration = Migration(settings, timeouts=["20"])
    texts = policies(migration)
    loaded = load(tmp_path, texts)
    main, slow = loaded["autoheal.yaml"], loaded["autoheal-stop-20s.yaml"]
    assert main.match.selector == {}  # all
    assert main.check.interval_s == 15.0  # -e over the file
    assert main.check.grace_s == 60.0
    assert main.notify.webhook == "https://hooks.example.com/T0/B0"
    assert main.notify.on == frozenset({"heal.recovered", "heal.failed", "heal.gave_up"})
    assert slow.match.selector == {"autoheal.stop.timeout": "20"}
    assert slow.heal.stop_timeout_s == 20.0 and slow.check.interval_s == 15.0
    text = texts["autoheal.yaml"]
    assert f"# From docker-autoheal's settings (-e, {env}): every container," in text
    assert "# CURL_TIMEOUT=30: no equivalent;" in text
    assert "# AUTOHEAL_FANCY=1: not known to this migration; not carried over." in text
    assert "# AUTOHEAL_START_PERIOD=60: autoheal waited this long after its own start;" in text
    assert "a crash loop is given up after 5 restarts in 10 minutes" in text


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        ("AUTOHEAL_INTERVAL=0\n", "{f}:1: AUTOHEAL_INTERVAL: expected whole seconds >= 1, got '0'"),
        (
            "\nAUTOHEAL_DEFAULT_STOP_TIMEOUT=ten\n",
            "{f}:2: AUTOHEAL_DEFAULT_STOP_TIMEOUT: expected whole seconds >= 0, got 'ten'",
        ),
        (
            "AUTOHEAL_ONLY_MONITOR_RUNNING=yes\n",
            "{f}:1: AUTOHEAL_ONLY_MONITOR_RUNNING: expected true or false, got 'yes'",
        ),
        (
            "WEBHOOK_URL=ftp://x\n",
            "{f}:1: WEBHOOK_URL: expected an http:// or https:// URL, got 'ftp://x'",
        ),
        (
            "AUTOHEAL_CONTAINER_LABEL=\n",
            "{f}:1: AUTOHEAL_CONTAINER_LABEL: expected a label name or all, got ''",
        ),
        ("# fine\nnot an assignment\n", "{f}:2: expected VAR=VALUE, got 'not an assignment'"),
    ],
)
def test_a_bad_setting_is_one_line_naming_the_file_line_and_variable(tmp_path, lines, message):
    env = tmp_path / "autoheal.env"
    env.write_text(lines)
    with pytest.raises(UsageError) as caught:
        policies(Migration(merged(read_env_file(env))))
    assert str(caught.value) == message.format(f=env)


def test_a_bad_stop_timeout_label_is_said():
    with pytest.raises(UsageError, match=r"label autoheal\.stop\.timeout: expected whole seconds"):
        policies(Migration(merged(), timeouts=["5s"]))


def test_the_labels_are_read_from_the_containers_autoheal_watches():
    def c(name: str, **labels: str) -> ContainerInfo:
        return ContainerInfo(name, name, labels)

    found = [
        c("a", autoheal="true", **{"autoheal.stop.timeout": "20"}),
        c("b", autoheal="false", **{"autoheal.stop.timeout": "30"}),
        c("c", **{"autoheal.stop.timeout": "5"}),
        c("d", autoheal="true", **{"autoheal.stop.timeout": "20"}),
    ]
    assert stop_timeouts(found, "autoheal") == ["20"]
    assert stop_timeouts(found, "all") == ["5", "20", "30"]


def test_written_files_never_replace_one_and_are_all_or_nothing(tmp_path):
    texts = policies(Migration(merged(), timeouts=["20"]))
    (tmp_path / "autoheal-stop-20s.yaml").write_text("mine\n")
    with pytest.raises(UsageError, match=r"autoheal-stop-20s\.yaml: already exists"):
        write(texts, tmp_path)
    assert not (tmp_path / "autoheal.yaml").exists()
    assert (tmp_path / "autoheal-stop-20s.yaml").read_text() == "mine\n"
    (tmp_path / "autoheal-stop-20s.yaml").unlink()
    written = write(texts, tmp_path)
    assert [p.name for p in written] == ["autoheal.yaml", "autoheal-stop-20s.yaml"]
    assert all(p.stat().st_mode & 0o777 == 0o644 for p in written)
