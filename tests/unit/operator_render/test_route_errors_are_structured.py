"""A route the operator cannot render says where and what as data, not only as text.

Code (the Accepted condition, blame) reads ``path``, ``problem`` and ``reason``; the condition's
message people read stays ``path: problem``.
"""

from __future__ import annotations

import pytest

from kube_routes import deployment, route
from modelgate_operator.errors import InvalidRoute
from modelgate_operator.rendering.render import render
from modelgate_operator.rendering.resources import parse_route


@pytest.mark.parametrize(
    ("spec", "path", "problem"),
    [
        (
            {"deployments": [deployment(baseUrl=None)]},
            "spec.deployments[0].baseUrl",
            "required unless provider is mock (or serviceRef)",
        ),
        ({"deployments": [deployment(weight=-1)]}, "spec.deployments[0].weight", "expected a number >= 0"),
        ({"deployments": []}, "spec.deployments", "at least one deployment is required"),
        ({"fallbacks": ["m"]}, "spec.fallbacks", "a model cannot fall back to itself"),
        ({"deployments": [deployment(name="")]}, "spec.deployments[0].name", "expected a non-empty string"),
    ],
)
def test_parse_errors_carry_path_and_problem(spec: dict[str, object], path: str, problem: str) -> None:
    body = route("r", "m")
    body["spec"].update(spec)
    parsed = parse_route(body, "modelgate")
    assert isinstance(parsed.error, InvalidRoute)
    assert (parsed.error.path, parsed.error.problem, parsed.error.reason) == (path, problem, "InvalidSpec")
    assert parsed.error.message == str(parsed.error) == f"{path}: {problem}"


def test_the_accepted_condition_shows_the_joined_message() -> None:
    parsed = parse_route(route("r", "m", deployments=[deployment(baseUrl=None)]), "modelgate")
    verdict = render([parsed], {}, None, gateway="modelgate", generation=1).verdicts[parsed.key]
    assert (verdict.accepted, verdict.accepted_reason) == (False, "InvalidSpec")
    assert verdict.accepted_message == "spec.deployments[0].baseUrl: required unless provider is mock (or serviceRef)"
