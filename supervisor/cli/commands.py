"""The operator's commands: pause, resume, reset (to the running agent, or recorded for the
next), start, stop, restart a service and wait, `schema`, and `migrate`."""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from ..config.model import Policy
from ..config.policy import load_policies
from ..core.gate import HELD_FOREVER
from ..errors import (
    AgentRunning,
    EngineUnreachable,
    UsageError,
)
from ..runtime.clock import Clock
from .parser import EXIT_FAILED, EXIT_OK, _strict


def cmd_schema() -> int:
    """The policy format as JSON Schema, for editors (yaml-language-server and others)."""
    from ..config.keys import json_schema

    print(json.dumps(json_schema(), indent=2))
    return EXIT_OK


def cmd_command(args: argparse.Namespace) -> int:
    """pause, resume, reset: through the running agent, or on the state file without one."""
    from ..store.commands import lock_state_dir, send_command, take_refusal
    from ..store.state import default_state_dir, load_state, save_state

    policy = _find_policy(args)
    state_dir = args.state_dir or default_state_dir()
    command: dict[str, Any] = {"command": args.command, "service": policy.service}
    if args.command == "pause":
        command["until"] = time.time() + args.for_s if args.for_s else None
        command["for_s"] = args.for_s or None
    try:
        lock = lock_state_dir(state_dir, _strict(args))
    except AgentRunning:
        path = send_command(state_dir, command)
        deadline = time.monotonic() + 5
        while path.exists():
            if time.monotonic() > deadline:
                print(
                    f"docker-supervisor: the agent did not take the command ({path})",
                    file=sys.stderr,
                )
                return EXIT_FAILED
            time.sleep(0.05)
        refused = take_refusal(path)
        if refused is not None:
            print(
                f"docker-supervisor: {policy.service}: {args.command} refused by the running "
                f"agent: {refused}",
                file=sys.stderr,
            )
            return EXIT_FAILED
        print(f"{policy.service}: {args.command} done by the running agent")
        return EXIT_OK
    with lock:
        saved = load_state(state_dir)
        entry = saved.services.setdefault(policy.service, {})
        if args.command == "pause":
            # In the frame the row's other instants were saved in (the next agent moves
            # them together by a step of the clock since).
            until = command["until"] and command["until"] - Clock().since_saved(entry.get("clock"))
            entry["held_until"] = until or HELD_FOREVER
        elif args.command == "resume":
            entry["held_until"] = None
        else:
            entry.update(attempt=0, restarts_at=[], gave_up=False)
        save_state(state_dir, saved.services, intents=saved.intents)
    print(f"{policy.service}: {args.command} recorded (no agent running)")
    return EXIT_OK


def cmd_migrate(args: argparse.Namespace) -> int:
    """docker-autoheal's set-up as policies: printed, or written into --out."""
    from ..config import migrate
    from ..docker.engine import Engine

    layers = []
    if args.env_file is not None:
        layers.append(migrate.read_env_file(args.env_file))
    engine = Engine()
    try:
        if args.from_container:
            where = f"container {args.from_container}"
            layers.append(
                migrate.read_assignments(engine.environment_of(args.from_container), where)
            )
        layers.append(migrate.read_assignments(args.env, "-e"))
        settings = migrate.merged(*layers)
        label = settings["AUTOHEAL_CONTAINER_LABEL"].value.strip()
        migration = migrate.Migration(settings)
        try:
            migration.timeouts = migrate.stop_timeouts(engine.list_containers(), label)
        except EngineUnreachable as e:
            migration.labels_read = False
            print(f"docker-supervisor: labels not read: {e}", file=sys.stderr)
    finally:
        engine.close()
    texts = migrate.policies(migration)
    if args.out is None:
        for name, text in texts.items():
            print(f"==> {name} <==\n{text}")
        return EXIT_OK
    for path in migrate.write(texts, args.out):
        print(f"wrote {path}")
    return EXIT_OK


def _find_policy(args: argparse.Namespace) -> Policy:
    """The service's policy: its own, or its selector's for the container it names."""
    policies = load_policies(args.policies, _strict(args))
    for policy in policies:
        if policy.service == args.service and not policy.is_selector:
            return policy
    if any(p.is_selector for p in policies):
        from ..core.selector import in_force
        from ..docker.engine import Engine
        from ..store.state import default_state_dir, load_state

        # start, stop and restart take no --state-dir: the default one names them then.
        state_dir = getattr(args, "state_dir", None) or default_state_dir()
        saved = load_state(state_dir, move_aside=False).services
        engine = Engine()
        try:
            containers = engine.list_containers()
        finally:
            engine.close()
        for policy in in_force(policies, containers, saved):
            if policy.service == args.service:
                return policy
    raise UsageError(f"{args.policies}: no policy for service {args.service!r}")


def _lifecycle(action: str) -> Any:
    def command(args: argparse.Namespace) -> int:
        from ..act.manager import ServiceManager

        manager = ServiceManager(
            _find_policy(args), compose_bin=args.compose_bin, compose_timeout_s=args.compose_timeout
        )
        done = getattr(manager, f"{action}_service")()
        seen = manager.observe()
        print(f"{manager.service}: {seen.status}" + (f" ({seen.reason})" if seen.reason else ""))
        return EXIT_OK if done else EXIT_FAILED

    return command
