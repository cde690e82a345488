"""The engine matrix: the integration tests of the heal paths against Debian 13's Docker
engine (26.1, API 1.45), run inside the same kind of host with that engine as its own.

Debian 12's engine (20.10, API 1.41) is the one `make test` runs everything against. The
tests run inside the host because a nested engine's containers are reachable only from its
network namespace, and they aim at that engine alone: it is the only one DOCKER_HOST names
there.
"""

from __future__ import annotations

import time

import pytest

from tests.e2e.host import (
    OFFLINE,
    SOURCE_DIR,
    Host,
    ensure_image,
)

pytestmark = pytest.mark.e2e

# The heal paths, compose, events, probes and the features meeting on a real engine; left
# out: make install and the unit (the other e2e module), the operations and engine restart.
MATRIX = [
    "tests/integration/test_healing_real.py",
    "tests/integration/test_compose_real.py",
    "tests/integration/test_events_real.py",
    "tests/integration/test_probes_real.py",
    "tests/integration/test_interactions_real.py",
]


@pytest.fixture(scope="module")
def host26():
    image, _ = ensure_image("trixie")
    with Host(image) as machine:
        yield machine


def test_the_heal_paths_pass_on_docker_26(host26):
    version = host26.run(
        "docker", "version", "--format", "{{.Server.Version}} {{.Server.APIVersion}}"
    ).stdout.split()
    assert version[0].startswith("26.") and version[1] == "1.45", version
    host26.put_project()
    host26.run("make", "venv", env=OFFLINE, workdir=SOURCE_DIR, timeout=600)
    began = time.monotonic()
    done = host26.run(
        ".venv/bin/pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        *MATRIX,
        workdir=SOURCE_DIR,
        timeout=1200,
        check=False,
    )
    print(
        f"\nDocker {version[0]} (API {version[1]}): {done.stdout.splitlines()[-1]}"
        f" in {time.monotonic() - began:.0f} s"
    )
    assert done.returncode == 0, done.stdout[-6000:]
