"""Notifications: a command (argv, no shell) and a webhook (JSON POST) for heal events.

Sent from a small pool of their own, so a slow or dead receiver never blocks or delays
healing; a failure is logged (notify.failed) and dropped. The webhook is retried twice, and
sent through outbound.py (no redirects, no proxy from the environment).
This module only delivers: the agent decides what happened and when.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import requests

from ..config.model import NotifyPolicy
from ..logs import log_event
from .outbound import request_status

log = logging.getLogger("supervisor.hooks")

WEBHOOK_TRIES = 3
RETRY_PAUSE_S = (0.5, 1.0)


def build_env(fields: dict[str, Any]) -> dict[str, str]:
    """The SUPERVISOR_* variables a command hook gets, on top of the agent's environment."""
    return {
        "SUPERVISOR_SERVICE": str(fields.get("service") or ""),
        "SUPERVISOR_EVENT": str(fields.get("event") or ""),
        "SUPERVISOR_REASON": str(fields.get("reason") or ""),
        "SUPERVISOR_ATTEMPT": str(fields.get("attempt") or ""),
        "SUPERVISOR_HOST": str(fields.get("host") or ""),
    }


class Notifications:
    def __init__(self, default: NotifyPolicy | None = None, workers: int = 2) -> None:
        self.default = default
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="notify")
        self._host = socket.gethostname()

    def send(self, policy: NotifyPolicy | None, event: str, **fields: Any) -> None:
        """Queue the notification and return at once."""
        policy = policy or self.default
        if policy is None or event not in policy.on:
            return
        payload = {"event": event, "host": self._host, "timestamp": time.time(), **fields}
        with contextlib.suppress(RuntimeError):  # shutting down: best effort
            self._pool.submit(self._deliver, policy, payload)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _deliver(self, policy: NotifyPolicy, payload: dict[str, Any]) -> None:
        if policy.command:
            self._run_command(policy, payload)
        if policy.webhook:
            self._post(policy, payload)

    def _run_command(self, policy: NotifyPolicy, payload: dict[str, Any]) -> None:
        try:
            done = subprocess.run(
                list(policy.command),
                env={**os.environ, **build_env(payload)},
                capture_output=True,
                text=True,
                timeout=policy.timeout_s,
                check=False,
            )
            error = (
                None
                if done.returncode == 0
                else (f"exit code {done.returncode}: {done.stderr.strip()[-500:]}")
            )
        except subprocess.TimeoutExpired:
            error = f"timed out after {policy.timeout_s:g}s"
        except OSError as e:
            error = f"cannot run {policy.command[0]}: {e.strerror or e}"
        self._report("command", error, payload)

    def _post(self, policy: NotifyPolicy, payload: dict[str, Any]) -> None:
        error = None
        for attempt in range(WEBHOOK_TRIES):
            try:
                status = request_status("POST", policy.webhook, policy.timeout_s, payload)
                if status < 300:
                    error = None
                    break
                error = f"HTTP {status}"
                if status < 400:
                    error += " (redirects are not followed)"
            except requests.RequestException as e:
                error = f"{type(e).__name__}: {e}"
            if attempt < len(RETRY_PAUSE_S):
                time.sleep(RETRY_PAUSE_S[attempt])
        self._report("webhook", error, payload)

    def _report(self, channel: str, error: str | None, payload: dict[str, Any]) -> None:
        if error is None:
            log_event(
                log,
                logging.DEBUG,
                "notify.sent",
                "notification sent",
                channel=channel,
                service=payload.get("service"),
                notified=payload["event"],
            )
        else:
            log_event(
                log,
                logging.WARNING,
                "notify.failed",
                "notification failed; dropped",
                channel=channel,
                service=payload.get("service"),
                notified=payload["event"],
                error=error,
            )
