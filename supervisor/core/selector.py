"""Selector policies: one policy, a service for every container its labels select.

Each selected container becomes an ordinary service (its own worker, counters, backoff,
give-up, status row and metrics), whose policy is the selector's with `match.identity`
naming that one container. Which container is whose, and the names, are decided here,
purely, from the containers and the names given before:

- A policy for one service wins over every selector: its container is not expanded.
- Of two selectors, the more specific one (more labels) wins; then the first by name.
- A service is named after its compose service, or its container name when that is taken
  (a second replica, the same service in another project, a policy's own name); a name
  once given stays with its container's identity (project, service and replica, or name),
  so a re-created container keeps its service and its memory.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from ..config.model import Match, Policy
from ..docker.containers import (
    LABEL_COMPOSE_ONEOFF,
    LABEL_COMPOSE_SERVICE,
    ContainerInfo,
    discover,
    identity_of,
)

Identity = tuple[str, str]

PREFERS_SINGLE = "a policy for one service wins over a selector"
MORE_SPECIFIC = "the selector with more labels wins, then the first by name"
NAME_TAKEN = "its compose service and container names are both taken"


@dataclass(frozen=True)
class Conflict:
    """A container two policies want; `winner` supervises it, `loser` does not."""

    container: str
    loser: str
    winner: str
    why: str


@dataclass
class Expansion:
    policies: dict[str, Policy] = field(default_factory=dict)  # service -> expanded policy
    names: dict[Identity, str] = field(default_factory=dict)  # every name given, kept or new
    conflicts: list[Conflict] = field(default_factory=list)


def saved_names(services: Mapping[str, Mapping[str, Any]], selectors: Iterable[str]) -> dict:
    """The names an agent gave, from its saved rows: identity -> service."""
    wanted = set(selectors)
    names: dict[Identity, str] = {}
    for service, row in services.items():
        identity = row.get("identity")
        if row.get("selected_by") in wanted and isinstance(identity, list) and len(identity) == 2:
            names[(str(identity[0]), str(identity[1]))] = service
    return names


def in_force(
    policies: Iterable[Policy],
    containers: Iterable[ContainerInfo],
    saved: Mapping[str, Mapping[str, Any]],
) -> list[Policy]:
    """The services a directory's policies make of these containers, as an agent that saved
    `saved` names them: the single services, then the expanded ones."""
    policies = list(policies)
    singles = [p for p in policies if not p.is_selector]
    selectors = [p for p in policies if p.is_selector]
    if not selectors:
        return singles
    names = saved_names(saved, (p.service for p in selectors))
    return singles + list(expand(selectors, singles, containers, names).policies.values())


def selects(policy: Policy, container: ContainerInfo) -> bool:
    selector = policy.match.selector
    if selector is None or container.labels.get(LABEL_COMPOSE_ONEOFF) == "True":
        return False
    return all(container.labels.get(k) == v for k, v in selector.items())


def expand(
    selectors: Iterable[Policy],
    singles: Iterable[Policy],
    containers: Iterable[ContainerInfo],
    names: Mapping[Identity, str] | None = None,
) -> Expansion:
    """Who supervises which selected container, under which name. Pure."""
    containers = sorted(containers, key=lambda c: (c.created, c.name))
    singles = list(singles)
    ordered = sorted(selectors, key=lambda p: (-len(p.match.selector or {}), p.service))
    claimed = {
        c.id: p.service
        for p in singles
        for c in discover(p.match, p.project, containers, p.compose_file)
    }
    taken = {p.service for p in singles}
    out = Expansion()
    chosen: list[tuple[ContainerInfo, Policy]] = []
    for container in containers:
        wanting = [p for p in ordered if selects(p, container)]
        if not wanting:
            continue
        winner = claimed.get(container.id) or wanting[0].service
        why = PREFERS_SINGLE if container.id in claimed else MORE_SPECIFIC
        out.conflicts += [
            Conflict(container.name, p.service, winner, why) for p in wanting if p.service != winner
        ]
        if container.id not in claimed:
            chosen.append((container, wanting[0]))
    # Names given before stay (unless a policy for one service took the name since)...
    for identity, name in (names or {}).items():
        if name not in taken:
            out.names[identity] = name
            taken.add(name)
    # ...and the newly selected, oldest first, get their compose service or their name.
    for container, policy in chosen:
        identity = identity_of(container)
        if identity not in out.names:
            preferred = [container.labels.get(LABEL_COMPOSE_SERVICE), container.name]
            free = [n for n in preferred if n and n not in taken]
            if not free:
                out.conflicts.append(Conflict(container.name, policy.service, "", NAME_TAKEN))
                continue
            out.names[identity] = free[0]
            taken.add(free[0])
        name = out.names[identity]
        out.policies[name] = replace(
            policy,
            service=name,
            match=Match(identity=identity),
            selected_by=policy.service,
        )
    return out
