"""The project's exceptions: one root, a few kinds.

Errors raised by `docker`, `subprocess` and `yaml` are wrapped into these where they are
caught, so callers handle one family. This module only defines; it never logs or exits.
"""

from __future__ import annotations


class SupervisorError(Exception):
    """Root of every error this project raises on purpose."""


class PolicyError(SupervisorError):
    """A policy file, or the policies directory, is not valid.

    Renders as one line: ``FILE:LINE: at 'FIELD': MESSAGE``.
    """

    def __init__(self, file: str, line: int | None, field: str | None, message: str) -> None:
        self.file = file
        self.line = line
        self.field = field
        self.message = message
        super().__init__(str(self))

    def __str__(self) -> str:
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        at = f" at '{self.field}':" if self.field else ""
        return _one_line(f"{where}:{at} {self.message}")


def _one_line(text: str) -> str:
    """Escape what would break the line (a key or file name may hold a newline)."""
    return "".join(
        c if c.isprintable() or c == " " else c.encode("unicode_escape").decode() for c in text
    )


class PolicyErrors(SupervisorError):
    """Every problem found while loading a policies directory."""

    def __init__(self, errors: list[PolicyError]) -> None:
        self.errors = errors
        super().__init__("\n".join(str(e) for e in errors))


class EngineError(SupervisorError):
    """The Docker engine refused or failed a request."""


class EngineUnreachable(EngineError):
    """The Docker engine did not answer."""


class ContainerGone(EngineError):
    """The container was removed while we acted on it."""


class ExecTimedOut(EngineError):
    """A command run inside a container (an exec probe) did not end within its timeout."""


class StateUnwritable(SupervisorError):
    """The state file could not be written: an intent is not on disk, so no stop is sent."""


class ComposeError(SupervisorError):
    """A `docker compose` command failed, timed out, or could not be found."""

    def __init__(self, message: str, stderr: str = "") -> None:
        self.stderr = stderr
        super().__init__(message)


class UsageError(SupervisorError):
    """A command-line argument is not valid (exit code 2)."""


class AgentRunning(SupervisorError):
    """Another agent already holds the state directory (exit code 2)."""


class UnsafeFile(SupervisorError):
    """A file or directory the agent would trust (its state directory, its lock) is not safe:
    writable by others, owned by someone else, or a symbolic link (exit code 2)."""
