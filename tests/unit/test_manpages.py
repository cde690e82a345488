"""The manual pages: generated from the parser and the policy's keys, kept as generated in
man/, and read by man(1) with every option and every key in them."""

import argparse
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from supervisor.cli import manpages
from supervisor.cli.parser import build_parser
from supervisor.config.keys import POLICY
from supervisor.config.values import Keys

MAN = Path(__file__).resolve().parents[2] / "man"


@pytest.mark.parametrize("name", sorted(manpages.PAGES))
def test_the_pages_in_the_tree_are_as_generated(name):
    """Regenerate with `make man` after a change (the generator's own comment lines, which
    name its version, aside)."""
    assert _roff((MAN / name).read_text()) == _roff(manpages.PAGES[name]())


def _roff(page: str) -> list[str]:
    return [line for line in page.splitlines() if not line.startswith('.\\"')]


def _rendered(name: str) -> str:
    if shutil.which("man") is None:
        pytest.fail("man(1) is needed to read the pages (Debian: man-db)")
    done = subprocess.run(
        ["man", "-l", "-P", "cat", str(MAN / name)],
        capture_output=True,
        text=True,
        env={**os.environ, "MANWIDTH": "200", "LC_ALL": "C.UTF-8"},
        check=True,
    )
    return done.stdout


def _options(parser: argparse.ArgumentParser) -> set[str]:
    found = set()
    for action in parser._actions:
        found.update(o for o in action.option_strings if o.startswith("--"))
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                found |= _options(sub)
    return found


def _keys(spec: Keys, path: tuple[str, ...] = ()) -> set[str]:
    found = set()
    for name, item in spec.keys.items():
        found.add(".".join((*path, name)))
        if isinstance(item, Keys):
            found |= _keys(item, (*path, name))
    return found


def test_the_command_page_names_every_option_of_every_command():
    page = _rendered("docker-supervisor.8")
    options = _options(build_parser())
    assert {"--log-level", "--heal-concurrency", "--for", "--watch"} <= options  # subcommands
    assert sorted(o for o in options - {"--help"} if o not in page) == []  # argparse's own


def test_the_policy_page_names_every_key():
    page = _rendered("docker-supervisor.yaml.5")
    keys = _keys(POLICY)
    assert {"service", "match.selector", "heal.backoff.max", "check.probe.http.url"} <= keys
    assert sorted(k for k in keys if k not in page) == []
