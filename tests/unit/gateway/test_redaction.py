"""Which values a deployment's redactor removes, and in which encodings."""

from __future__ import annotations

import json
import re

from modelgate_gateway.config import validate_data
from modelgate_gateway.redaction import Redactor, credential_values
from modelgate_gateway.runtime import compile_runtime

KEY = "sk-a/b\"c\\d<e>&f"


def test_every_json_encoding_of_the_key_is_removed_and_the_rest_kept() -> None:
    redactor = Redactor(credential_values(KEY, {"Authorization": f"Bearer {KEY}"}))
    plain = json.dumps({"message": f"got Bearer {KEY}"})
    php = plain.replace("/", "\\/")
    go = plain.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    go_upper = re.sub(r"\\u([0-9a-f]{4})", lambda m: "\\u" + m.group(1).upper(), go)  # \u003C
    for body in (plain, php, go, go_upper, f"raw {KEY}"):
        out = redactor.bytes(body.encode())
        assert b"[redacted]" in out and KEY.encode() not in out
    assert json.loads(redactor.bytes(plain.encode())) == {"message": "got Bearer [redacted]"}
    assert redactor.text(f"key {KEY}!") == "key [redacted]!"


def test_only_credential_named_extra_headers_of_some_length_are_secrets() -> None:
    headers = {"x-api-key": "long-enough-token", "X-Auth-Token": "tok-0123456789", "x-team": "search-platform",
               "api-version-key": "2"}
    assert credential_values(None, headers) == ["long-enough-token", "tok-0123456789"]


def test_a_redactor_without_secrets_is_false_and_none_shows_in_its_repr() -> None:
    assert not Redactor(())
    assert Redactor([]).bytes(b"anything") == b"anything"
    assert "sk-" not in repr(Redactor(["sk-secret-value"]))
    assert len(repr(Redactor([f"Bearer {KEY}"]))) < 40


def test_the_compiled_runtime_never_shows_a_secret_in_its_repr(tmp_path) -> None:
    doc = {"apiVersion": "config.modelgate.dev/v1alpha1", "kind": "GatewayConfig", "spec": {
        "deployments": [{"name": "a", "baseUrl": "https://x.example/v1", "model": "m",
                         "credentials": {"secretKey": "up"}}],
        "models": [{"name": "gpt-4o", "targets": [{"deployment": "a"}]}],
        "responseIds": {"signingKey": {"secretKey": "sign"}},
        "state": {"redisUrl": "redis://redis:6379", "redisPassword": {"secretKey": "redis"}},
    }}
    secrets = {"up": b"sk-upstream-secret", "sign": b"signing-secret-value", "redis": b"redis-secret-value"}
    runtime = compile_runtime(validate_data(doc), secrets, str(tmp_path))
    shown = repr(runtime)
    assert "deployments" in shown and "x.example" in shown
    for value in ("sk-upstream-secret", "signing-secret-value", "redis-secret-value"):  # resolved references
        assert value not in shown
    assert runtime.deployments["a"].redactor is not None
