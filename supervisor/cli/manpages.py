"""The manual pages, generated, never written by hand: docker-supervisor(8) from the command
line's parser (argparse-manpage), docker-supervisor.yaml(5) from the policy's keys (made into
reStructuredText and written by docutils' man writer).

`python -m supervisor.cli.manpages DIR` writes both into DIR; `man/` holds them as generated,
and a test keeps them so. Needs the dev extras (argparse-manpage, docutils); the agent never
imports this module.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path

from .. import __version__
from ..config.keys import POLICY
from ..config.values import Key, Keys
from .parser import build_parser

# Fixed, so that the pages are the same wherever and whenever they are made.
DATE = "2026-12-06"
SOURCE = f"docker-supervisor {__version__}"

SUMMARY = "a self-healing supervisor agent for Docker hosts"

POLICY_INTRO = """\
One file a service, in the policies directory (/etc/docker-supervisor/policies.d),
named ``*.yaml`` or ``*.yml``; or one selector policy for many containers. Every problem
is refused with one line that names the file, the line and the dotted field, and exit
code 2; nothing that was already running is disturbed. Durations are 500ms, 10s, 5m, 1h,
1h30m, or plain seconds. ``docker-supervisor schema`` prints the same format as a JSON
Schema."""


def command_page() -> str:
    """docker-supervisor(8), from the parser every command line goes through."""
    from argparse_manpage.manpage import Manpage

    # argparse wraps usage lines at the terminal's width: the page is made at a fixed one.
    with _columns(80):
        parser = build_parser()
        return str(Manpage(parser, _data=_command_data()))


@contextlib.contextmanager
def _columns(width: int) -> Iterator[None]:
    before = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = str(width)
    try:
        yield
    finally:
        if before is None:
            del os.environ["COLUMNS"]
        else:
            os.environ["COLUMNS"] = before


def _command_data() -> dict[str, object]:
    return {
        "project_name": "docker-supervisor",
        "version": __version__,
        "manual_title": "System Administration",
        "manual_section": 8,
        "description": SUMMARY,
        "date": DATE,
    }


def policy_page() -> str:
    """docker-supervisor.yaml(5), from the keys the loader reads."""
    from docutils.core import publish_string
    from docutils.writers import manpage

    page = publish_string(
        policy_rst(),
        writer=manpage.Writer(),
        settings_overrides={"report_level": 2, "halt_level": 2},
    )
    return page.decode()


def policy_rst() -> str:
    title, subtitle = "docker-supervisor.yaml", "a policy for one docker-supervisor service"
    lines = [
        "=" * len(title),
        title,
        "=" * len(title),
        "",
        "-" * len(subtitle),
        subtitle,
        "-" * len(subtitle),
        "",
        ":Manual section: 5",
        ":Manual group: File Formats",
        f":Date: {DATE}",
        f":Version: {SOURCE}",
        "",
        "DESCRIPTION",
        "===========",
        "",
        POLICY_INTRO,
        "",
        "KEYS",
        "====",
        "",
    ]
    lines += _keys_rst(POLICY, ())
    lines += ["SEE ALSO", "========", "", "docker-supervisor(8)", ""]
    return "\n".join(lines)


def _keys_rst(spec: Keys, path: tuple[str, ...]) -> list[str]:
    out: list[str] = []
    for name, item in spec.keys.items():
        dotted = ".".join((*path, name))
        help_text = item.help
        notes = []
        if name in spec.required:
            said = spec.required[name].removeprefix("required").lstrip(": ")
            notes.append(f"Required: {said}." if said else "Required.")
        if isinstance(item, Key) and item.examples:
            shown = ", ".join(json.dumps(example) for example in item.examples)
            notes.append(f"For example: ``{shown}``.")
        out += [f"**{dotted}**", f"    {_escape(help_text)}. " + " ".join(notes), ""]
        if isinstance(item, Keys):
            out += _keys_rst(item, (*path, name))
    return out


def _escape(text: str) -> str:
    """Plain text inside reStructuredText: no markup by accident."""
    for char in "\\*`_|":
        text = text.replace(char, "\\" + char)
    return text


PAGES = {"docker-supervisor.8": command_page, "docker-supervisor.yaml.5": policy_page}


def write(directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, render in PAGES.items():
        path = directory / name
        path.write_text(render())
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    for path in write(Path(args[0] if args else "man")):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
