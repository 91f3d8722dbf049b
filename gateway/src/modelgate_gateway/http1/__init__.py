"""A lean HTTP/1.1 keep-alive client for upstream calls, on an asyncio protocol.

Why not aiohttp's ``ClientSession``: every upstream call of the gateway has the same shape (one
origin per pool, a body of known length, an answer read whole or relayed piece by piece), and the
general client's machinery (URL objects, request and response objects, payload registry,
``StreamReader``, tracing hooks) cost more CPU per call than all of the gateway's own features
together, most of it before a stream's first delta reaches the client (see docs/performance.md).
Here a request is one buffer written to a pooled connection, and the answer is parsed by llhttp
(``httptools``) straight into the list the relay drains.

Timeouts: connecting (DNS, TCP, TLS) is bounded by ``Endpoint.connect_seconds``; while an answer
is awaited, a connection on which no byte arrived for ``read_idle_seconds`` fails with
``TimeoutError``. One timer per request checks the time of the last byte, rather than one timer
per read. Back-pressure: a body piling up faster than the caller drains it pauses reading.
"""

from .client import Http1Client
from .connection import ProxyError, UpstreamDisconnected, UpstreamProtocolError
from .endpoint import Endpoint, Proxy, proxy_from_environment
from .reply import Reply

__all__ = [
    "Endpoint",
    "Http1Client",
    "Proxy",
    "ProxyError",
    "Reply",
    "UpstreamDisconnected",
    "UpstreamProtocolError",
    "proxy_from_environment",
]
