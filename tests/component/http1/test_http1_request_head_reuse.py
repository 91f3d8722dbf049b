"""An endpoint's request heads: the request line is made once per method and path, header values
are vetted by a quick test first, and a content type once; none of that may let a bad value through
or send a stale line.
"""

from __future__ import annotations

import pytest

from modelgate_gateway.http1 import Endpoint

URL = "http://example.com/v1"


def _lines(head: bytes) -> list[str]:
    return head.decode("latin-1").split("\r\n")


def test_request_lines_are_per_method_path_and_query() -> None:
    endpoint = Endpoint(URL, {"Authorization": "Bearer k"}, query={"api-version": "1"})
    first = endpoint.head("POST", "/responses", None, (), "application/json", 2)
    assert first == endpoint.head("POST", "/responses", None, (), "application/json", 2)
    assert _lines(first)[:3] == [
        "POST /v1/responses?api-version=1 HTTP/1.1",
        "Host: example.com",
        "Authorization: Bearer k",
    ]
    assert _lines(endpoint.head("GET", "/responses", None, (), None, None))[0] == (
        "GET /v1/responses?api-version=1 HTTP/1.1"
    )
    assert _lines(endpoint.head("POST", "/responses", {"a": "b c"}, (), None, 0))[0] == (
        "POST /v1/responses?api-version=1&a=b+c HTTP/1.1"
    )
    assert _lines(endpoint.head("GET", "/a b", None, (), None, None))[0] == "GET /v1/a%20b?api-version=1 HTTP/1.1"
    for i in range(200):  # more paths than are remembered: every line is still its own path's
        assert _lines(endpoint.head("GET", f"/responses/resp_{i}", None, (), None, None))[0] == (
            f"GET /v1/responses/resp_{i}?api-version=1 HTTP/1.1"
        )
    assert endpoint.head("POST", "/responses", None, (), "application/json", 2) == first


def test_lengths_and_the_end_of_the_head() -> None:
    endpoint = Endpoint(URL)
    assert endpoint.head("POST", "/x", None, (), "application/json", 12).endswith(
        b"\r\nContent-Type: application/json\r\nContent-Length: 12\r\n\r\n"
    )
    assert endpoint.head("GET", "/x", None, (), None, None).endswith(b"Host: example.com\r\n\r\n")


@pytest.mark.parametrize("bad", ["a\rb", "a\nb", "a\0b", "req_1\r\nX-Injected: 1"])
def test_a_known_header_name_with_a_line_break_or_nul_is_refused_every_time(bad: str) -> None:
    endpoint = Endpoint(URL)
    assert b"X-Request-Id: req_1\r\n" in endpoint.head("GET", "/x", None, [("X-Request-Id", "req_1")], None, None)
    with pytest.raises(ValueError, match="line break or NUL"):
        endpoint.head("GET", "/x", None, [("X-Request-Id", bad)], None, None)
    with pytest.raises(ValueError, match="line break or NUL"):
        endpoint.head("POST", "/x", None, (), "text/plain" + bad, 0)


def test_other_control_characters_and_latin1_pass_as_before() -> None:
    head = Endpoint(URL).head("GET", "/x", None, [("X-Tab", "a\tb\x01"), ("X-Name", "café")], "text/plain; x=\t", 0)
    assert b"X-Tab: a\tb\x01\r\n" in head
    assert b"X-Name: caf\xe9\r\n" in head
    assert b"Content-Type: text/plain; x=\t\r\n" in head


def test_a_new_header_name_is_checked_to_be_a_token() -> None:
    with pytest.raises(ValueError, match="invalid HTTP header name"):
        Endpoint(URL).head("GET", "/x", None, [("Bad Name", "v")], None, None)
