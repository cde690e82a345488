"""The JSON Schema (`docker-supervisor schema`, policy.schema.json) is made from the loader's
own definitions: it is valid, every shipped policy passes it, and over generated policies it
rejects what the loader rejects, except for the rules JSON Schema cannot say."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from supervisor.config.keys import POLICY, json_schema
from supervisor.config.policy import load_policy_file
from supervisor.config.source import _Loader
from supervisor.config.values import Keys
from supervisor.errors import PolicyError
from tests.support import REPO, run_cli

# JSON cannot tell 80 from 80.0; YAML can, and the loader wants a whole number.
Validator = jsonschema.validators.extend(
    jsonschema.Draft202012Validator,
    type_checker=jsonschema.Draft202012Validator.TYPE_CHECKER.redefine(
        "integer", lambda checker, value: type(value) is int
    ),
)
# What the loader checks and JSON Schema cannot: across keys, against the disk, or bounds a
# pattern does not carry. Each is in the schema's descriptions instead.
LOADER_ONLY = (
    "expected a duration from 0 to 366 days",  # "99999h": a string's size, not its shape
    "expected a status range within 100-599",  # "599-100": the order of the two
    "must be at least heal.backoff.initial",
    "must be at most check.probe.period",
    "needs a compose section with a file",
    "needs heal.scope compose or project",
    "with scope compose needs match.compose_service",
    "a selector policy cannot heal 'missing'",
    "no such file",
    "is not a host name a resolver accepts",  # IDNA: the encoded labels, not the shape
)


def schema_errors(data) -> list[str]:
    return [e.message for e in Validator(json_schema()).iter_errors(data)]


def test_the_schema_file_is_what_the_command_prints_and_is_valid():
    done = run_cli("schema")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == json.loads((REPO / "policy.schema.json").read_text()), (
        "policy.schema.json is stale: docker-supervisor schema > policy.schema.json"
    )
    jsonschema.Draft202012Validator.check_schema(json_schema())


@pytest.mark.parametrize("path", sorted((REPO / "policies").glob("*.yaml")), ids=lambda p: p.name)
def test_every_shipped_policy_passes_and_names_the_schema(path: Path):
    text = path.read_text()
    assert text.startswith("# yaml-language-server: $schema=../policy.schema.json\n")
    assert schema_errors(yaml.load(text, Loader=_Loader)) == []


def test_durations_and_reasons_carry_help_and_examples():
    heal = json_schema()["properties"]["heal"]["properties"]
    assert "1h30m" in heal["pause"]["description"]
    assert heal["on"]["items"]["enum"] == ["unhealthy", "exited", "oom_killed", "dead", "missing"]
    assert heal["on"]["examples"] == [["unhealthy", "exited"]]


VALID = {
    "service": "web",
    "match": {"compose_service": "web", "label": {"app": "web"}, "port": 8080},
    "check": {
        "interval": "10s",
        "failures": 2,
        "probe": {"http": {"port": 8080, "path": "/health", "status": "200-299"}, "period": "5s"},
    },
    "heal": {
        "on": ["unhealthy", "exited"],
        "backoff": {"initial": "10s", "factor": 2, "max": "5m", "jitter": 0.1},
        "max_restarts": 5,
        "window": "10m",
    },
    "notify": {"webhook": "http://127.0.0.1:9095/alerts", "on": ["heal.gave_up"]},
}
# Values at the edges of what each key takes, and plain garbage.
EDGES = [0, 1, -1, 2, 99, 100, 101, 599, 600, 65535, 65536, 10**12, 0.5, 1.0, 2.5, 99.5, 100.5]
WORDS = [
    "10s",
    "0s",
    "0",
    "-5s",
    "1h30m",
    "500ms",
    "99999h",
    "1.5",
    "soon",
    "",
    " ",
    "web",
    "Web",
    "-web",
    "web!",
    "db-1",
    "unhealthy",
    "missing",
    "compose",
    "project",
    "host",
    "restart",
    "none",
    "http://x/",
    "https://x:1/a",
    "ftp://x/",
    "/health",
    "health",
    "200",
    "200-399",
    "599-100",
    "099",
    "700",
    "heal.failed",
    "heal.gave_up",
]
SCALARS = st.one_of(
    st.sampled_from(EDGES),
    st.sampled_from(WORDS),
    st.none(),
    st.booleans(),
    st.integers(-(10**12), 10**12),
    st.floats(allow_nan=False),
    st.text(max_size=12),
    st.lists(st.sampled_from(WORDS), max_size=3),
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=8,
)


def paths(node, prefix=()):
    yield prefix
    if isinstance(node, dict):
        for key, value in node.items():
            yield from paths(value, (*prefix, key))


@st.composite
def mutated(draw):
    """VALID with one to three keys replaced, removed or added."""
    doc = json.loads(json.dumps(VALID))
    for _ in range(draw(st.integers(1, 3))):
        where = draw(st.sampled_from(list(paths(doc))[1:]))
        parent = doc
        for key in where[:-1]:
            parent = parent[key]
        kind = draw(st.sampled_from(["replace", "remove", "add"]))
        if kind == "replace":
            parent[where[-1]] = draw(SCALARS if draw(st.integers(0, 3)) else VALUES)
        elif kind == "remove":
            del parent[where[-1]]
        elif isinstance(parent, dict):
            parent[draw(st.sampled_from(["x", "scope", "grace", "tcp", "exec", "name"]))] = draw(
                VALUES
            )
        if not isinstance(doc, dict):
            break
    return doc


def leaves(spec: Keys, prefix=()):
    """The path of every key of the format."""
    for name, item in spec.keys.items():
        if isinstance(item, Keys):
            yield from leaves(item, (*prefix, name))
        else:
            yield (*prefix, name)


def place(path, value) -> dict:
    """VALID with `value` at `path`; where only one key of a mapping may be there (a probe's
    kind, an http probe's url or port), the others go."""
    doc = json.loads(json.dumps(VALID))
    node, spec = doc, POLICY
    for depth, key in enumerate(path):
        if spec.one_of and key in spec.one_of[0]:
            for other in spec.one_of[0]:
                if other != key:
                    node.pop(other, None)
        if depth == len(path) - 1:
            node[key] = value
            return doc
        if not isinstance(node.get(key), dict):
            node[key] = {}
        node, spec = node[key], spec.keys[key]
    return doc


EVERY_VALUE = [
    None,
    True,
    False,
    [],
    {},
    {"x": 1},
    [1, "a"],
    *EDGES,
    *WORDS,
    ["unhealthy"],
    ["heal.failed"],
    ["/bin/true"],
    {"app": "web"},
    {"app": None},
    {1: "x"},
]


@pytest.mark.parametrize("path", list(leaves(POLICY)), ids=".".join)
def test_each_key_with_each_value_the_schema_and_the_loader_agree(tmp_path, path):
    for value in EVERY_VALUE:
        document = place(path, value)
        agree(tmp_path / "p.yaml", document)


def agree(path: Path, document) -> None:
    path.write_text(yaml.safe_dump(document))
    data = yaml.load(path.read_text(), Loader=_Loader)  # as the loader and editors read it
    try:
        load_policy_file(path)
        loader_error = None
    except PolicyError as e:
        loader_error = str(e)
    errors = schema_errors(data)
    if loader_error is None:
        assert errors == [], (data, errors)  # never stricter than the loader
    elif not any(rule in loader_error for rule in LOADER_ONLY):
        assert errors, (data, loader_error)


# The same examples every run (a disagreement found once is found every time).
@settings(
    max_examples=1500,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    database=None,
    derandomize=True,
)
@given(document=mutated())
def test_the_schema_rejects_what_the_loader_rejects(tmp_path_factory, document):
    agree(tmp_path_factory.mktemp("schema") / "p.yaml", document)
