"""Which upstreams go through the egress proxy: HTTPS_PROXY / HTTP_PROXY / NO_PROXY as curl reads them."""

from __future__ import annotations

import pytest

from modelgate_gateway.http1 import Proxy, proxy_from_environment

ENV = {"HTTPS_PROXY": "http://team:p%40ss@proxy.corp:3128", "http_proxy": "proxy.corp:8080",
       "NO_PROXY": "localhost, .svc.cluster.local,10.0.0.7:8000,internal.example"}


@pytest.mark.parametrize(("url", "expected"), [
    ("https://api.openai.com/v1", ("proxy.corp", 3128)),
    ("http://vllm.example:8000/v1", ("proxy.corp", 8080)),
    ("http://localhost:8000/v1", None),
    ("http://vllm.models.svc.cluster.local:8000/v1", None),
    ("https://svc.cluster.local/v1", None),  # the domain itself, with or without the leading dot
    ("http://10.0.0.7:8000/v1", None),
    ("http://10.0.0.7:9000/v1", ("proxy.corp", 8080)),  # NO_PROXY named another port
    ("https://eu.internal.example/openai/v1", None),
    ("https://notinternal.example/v1", ("proxy.corp", 3128)),
])
def test_the_upstream_scheme_picks_the_proxy_and_no_proxy_sends_direct(url: str, expected: tuple | None) -> None:
    proxy = proxy_from_environment(url, ENV)
    assert (proxy.host, proxy.port) == expected if proxy is not None else expected is None


def test_credentials_become_a_basic_authorization_and_stay_out_of_repr() -> None:
    proxy = proxy_from_environment("https://api.openai.com/v1", ENV)
    assert proxy is not None and proxy.authorization == "Basic dGVhbTpwQHNz"  # team:p@ss
    assert "p@ss" not in repr(proxy) and "dGVhbTpwQHNz" not in repr(proxy)


def test_no_proxy_star_and_unset_variables_mean_direct() -> None:
    assert proxy_from_environment("https://api.openai.com/v1", {**ENV, "NO_PROXY": "*"}) is None
    assert proxy_from_environment("https://api.openai.com/v1", {}) is None


@pytest.mark.parametrize("url", ["socks5://proxy:1080", "https://proxy:3128", "http://:3128"])
def test_unsupported_proxies_are_refused(url: str) -> None:
    with pytest.raises(ValueError) as caught:
        Proxy.from_url(url)
    assert "proxy" in str(caught.value)
