"""Real server software for the integration suite: PostgreSQL, Redis and nginx from Debian's
packages, built once (no image registry is needed) and cached by the hash of the recipe."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

HERE = Path(__file__).resolve().parent
NAMES = ("postgres", "redis", "nginx")
RECIPE = [
    HERE / "build-base",
    *(HERE / f"{name}.Dockerfile" for name in NAMES),
    HERE / "nginx.conf",
    HERE / "nginx-check",
]
REPOSITORY = "docker-supervisor/workloads"


def _digest() -> str:
    return hashlib.sha256(b"".join(p.read_bytes() for p in RECIPE)).hexdigest()[:12]


def _have(tag: str) -> bool:
    found = subprocess.run(["docker", "image", "inspect", tag], capture_output=True, check=False)
    return found.returncode == 0


def ensure_images() -> dict[str, str]:
    """The tags of the postgres, redis and nginx images, built if missing (about a minute)."""
    digest = _digest()
    base = f"{REPOSITORY}:base-{digest}"
    tags = {name: f"{REPOSITORY}:{name}-{digest}" for name in NAMES}
    if all(_have(tag) for tag in tags.values()):
        return tags
    if not _have(base):
        subprocess.run([str(HERE / "build-base"), base], check=True, timeout=1200)
    for name, tag in tags.items():
        subprocess.run(
            [
                "docker", "build", "-q", "--build-arg", f"BASE={base}", "-t", tag,
                "-f", str(HERE / f"{name}.Dockerfile"), str(HERE),
            ],
            check=True, capture_output=True, timeout=600,
        )  # fmt: skip
    return tags
