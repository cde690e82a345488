"""Outbound HTTP that the far end cannot steer: webhooks and http probes.

The agent runs as root beside the Docker socket, so where its requests go is decided by the
policy alone. No redirect is followed: a receiver answering 307 to a loopback address (a
Docker socket proxy) would otherwise make the agent POST there. No proxy, netrc or CA bundle is
taken from the environment. The answer's body is never read, only its status. Connect and
read each get the timeout. Nothing is retried here; callers decide.
"""

from __future__ import annotations

from typing import Any

import requests


def request_status(method: str, url: str, timeout_s: float, json: Any = None) -> int:
    """Send one request and return the status of its answer; raise requests' errors."""
    with requests.Session() as session:
        session.trust_env = False
        response = session.request(
            method,
            url,
            json=json,
            timeout=(timeout_s, timeout_s),
            allow_redirects=False,
            stream=True,  # the body stays unread; closing drops the connection
        )
        response.close()
        return response.status_code
