"""Header names the hot path looks up are compiled once, keep their configured spelling, and match any case."""

from __future__ import annotations

from pathlib import Path

from multidict import CIMultiDict, CIMultiDictProxy, istr

from modelgate_gateway.config import validate_data
from modelgate_gateway.handlers import clientheaders
from modelgate_gateway.runtime import compile_runtime
from modelgate_gateway.upstream.affinity import session_of


def _doc() -> dict:
    return {
        "apiVersion": "config.modelgate.dev/v1alpha1",
        "kind": "GatewayConfig",
        "spec": {
            "deployments": [{"name": "a", "baseUrl": "https://x.example/v1/", "model": "m"}],
            "models": [{"name": "gpt-4o", "targets": [{"deployment": "a"}]}],
            "auth": {"allowUnauthenticated": True},
            "observability": {"endUserHeader": "x-END-user"},
            "affinity": {"headers": ["X-Session-ID"]},
            "forwardHeaders": ["openai-beta"],
        },
    }


def test_names_are_case_insensitive_strings_with_their_configured_spelling(tmp_path: Path) -> None:
    runtime = compile_runtime(validate_data(_doc()), {}, str(tmp_path))
    names = (runtime.end_user_header, *runtime.affinity_headers, *runtime.forward_headers)
    assert all(isinstance(name, istr) for name in names)
    assert [str(name) for name in names] == ["x-END-user", "X-Session-ID", "openai-beta"]
    sent = CIMultiDictProxy(
        CIMultiDict([("X-End-User", "alice"), ("x-session-id", "s1"), ("OpenAI-Beta", "responses=v1")])
    )
    assert runtime.end_user_header is not None and sent.get(runtime.end_user_header) == "alice"
    assert session_of({}, sent, runtime.affinity_headers) == "h:s1"
    # forwarded under the configured spelling, whatever the client's
    assert clientheaders.forwarded(sent, runtime.forward_headers) == (("openai-beta", "responses=v1"),)


def test_no_end_user_header_stays_none(tmp_path: Path) -> None:
    doc = _doc()
    doc["spec"]["observability"] = {"endUserHeader": None}
    assert compile_runtime(validate_data(doc), {}, str(tmp_path)).end_user_header is None
