"""Run the simulation over many seeds: `make simulate SEEDS=N`, or replay one with --seed."""

from __future__ import annotations

import argparse
import sys
import time

from .world import World


def run_seed(seed: int, steps: int) -> list[str]:
    world = World(seed, steps)
    return world.run()


def replay_command(seed: int, steps: int) -> str:
    return f".venv/bin/python -m tests.simulation.run --seed {seed} --steps {steps}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seeds", type=int, default=200, help="how many seeds (default 200)")
    parser.add_argument("--first", type=int, default=0, help="the first seed (default 0)")
    parser.add_argument("--seed", type=int, help="replay this one seed, with its trace")
    parser.add_argument("--steps", type=int, default=600, help="steps a seed (default 600)")
    args = parser.parse_args(argv)
    seeds = [args.seed] if args.seed is not None else range(args.first, args.first + args.seeds)
    began, failed = time.monotonic(), 0
    for seed in seeds:
        world = World(seed, args.steps)
        violations = world.run()
        if violations:
            failed += 1
            print(f"seed {seed}: {violations[0]}")
            if args.seed is not None:
                print("\n".join(world.trace[-40:]))
            print(f"  replay: {replay_command(seed, args.steps)}")
    took = time.monotonic() - began
    print(f"simulation: {len(seeds) - failed} passed, {failed} failed ({took:.1f}s)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
