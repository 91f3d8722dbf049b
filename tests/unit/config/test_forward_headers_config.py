"""spec.forwardHeaders refuses credentials and headers the gateway sets itself."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from modelgate_gateway.config.v1alpha1 import Spec


@pytest.mark.parametrize("name", ["Authorization", "api-key", "COOKIE", "X-Request-Id", "Content-Length"])
def test_credentials_and_gateway_headers_are_refused(name: str) -> None:
    with pytest.raises(ValidationError, match="never forwarded"):
        Spec.model_validate({"forwardHeaders": ["OpenAI-Beta", name]})


def test_the_default_allowlist() -> None:
    assert Spec().forward_headers == ["OpenAI-Beta", "Idempotency-Key"]
