"""The query parameters each follow-up endpoint defines: the only ones forwarded upstream, validated.

A client's query string must not reach an upstream as it is: a parameter the endpoint does not
define could change what the upstream does (Azure's ``api-version``) and values go into a request
line. So each endpoint keeps only the parameters of the OpenAI API reference (others are ignored,
as OpenAI ignores them: SDKs add their own, like the Azure client's ``api-version``), and every kept
value is checked: bounded length, no control characters, and the right shape for booleans,
integers and enums. The deployment's configured ``queryParams`` are added by the HTTP client and
always win over these (see ``http1.Endpoint.head``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping

from multidict import MultiDict, MultiDictProxy

from ..errors import InvalidRequest

_MAX_VALUE_CHARS = 512
_MAX_REPEATED = 32
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_NO_PARAMS: MultiDictProxy[str] = MultiDictProxy(MultiDict())

Check = Callable[[str, str], str]
"""(name, value) -> the value to forward; raises InvalidRequest."""


def _invalid(name: str, expected: str) -> InvalidRequest:
    # The value is never echoed: it may hold anything, control characters included.
    return InvalidRequest(f"Invalid value for query parameter '{name}': expected {expected}.", param=name,
                          code="invalid_value")


def _text(name: str, value: str) -> str:
    if not value or len(value) > _MAX_VALUE_CHARS:
        raise _invalid(name, f"a non-empty string of at most {_MAX_VALUE_CHARS} characters")
    if _CONTROL.search(value):
        raise _invalid(name, "a string without control characters")
    return value


def _boolean(name: str, value: str) -> str:
    lowered = value.lower()
    if lowered not in ("true", "false"):
        raise _invalid(name, "'true' or 'false'")
    return lowered


def _integer(low: int, high: int) -> Check:
    def check(name: str, value: str) -> str:
        if not value.isascii() or not value.isdigit() or not low <= int(value) <= high:
            raise _invalid(name, f"an integer from {low} to {high}")
        return str(int(value))

    return check


def _order(name: str, value: str) -> str:
    if value not in ("asc", "desc"):
        raise _invalid(name, "'asc' or 'desc'")
    return value


_INCLUDE = {"include": _text, "include[]": _text}
_REPEATABLE = frozenset(_INCLUDE)

RETRIEVE: Mapping[str, Check] = {"stream": _boolean, "starting_after": _integer(0, 2**53),
                                  "include_obfuscation": _boolean, **_INCLUDE}
INPUT_ITEMS: Mapping[str, Check] = {"after": _text, "before": _text, "limit": _integer(1, 100), "order": _order,
                                    **_INCLUDE}
CONVERSATION_ITEMS: Mapping[str, Check] = {"after": _text, "limit": _integer(1, 100), "order": _order, **_INCLUDE}
INCLUDE: Mapping[str, Check] = _INCLUDE
NONE: Mapping[str, Check] = {}


def forwarded(query: Mapping[str, str], defined: Mapping[str, Check]) -> MultiDictProxy[str]:
    """The parameters of ``query`` (a client's, names may repeat) that ``defined`` lists, checked.

    Raises InvalidRequest (400, ``param`` naming the parameter) for a bad value, a single-valued
    parameter given twice, or too many values of a repeatable one.
    """
    if not defined or not query:
        return _NO_PARAMS
    kept: MultiDict[str] = MultiDict()
    for name, value in query.items():
        check = defined.get(name)
        if check is None:
            continue
        if name in kept and (name not in _REPEATABLE or len(kept.getall(name)) >= _MAX_REPEATED):
            raise InvalidRequest(f"Query parameter '{name}' was given too many times.", param=name,
                                 code="invalid_value")
        kept.add(name, check(name, value))
    return MultiDictProxy(kept) if kept else _NO_PARAMS
