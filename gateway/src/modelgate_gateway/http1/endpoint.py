"""What is fixed about one upstream's requests (origin, path prefix, headers, timeouts), encoded once."""

from __future__ import annotations

import base64
import re
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import quote, unquote, urlencode, urlsplit

_TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
_PLAIN_PATH = re.compile(r"^[A-Za-z0-9/_.~-]*$")
_PATH_SAFE = "/:@!$&'()*+,;=-._~%"
_KNOWN_NAMES: set[str] = set()  # names already found to be tokens (a few per deployment)
_TYPE_LINES: dict[str, bytes] = {}  # Content-Type values already checked, and their encoded line
_MAX_REMEMBERED = 64  # request lines per endpoint, content types: both sets are a handful in use


def check_header(name: str, value: str) -> None:
    """Refuse what would break the request's framing: a non-token name, CR, LF or NUL in a value."""
    if name not in _KNOWN_NAMES:
        if not _TOKEN.match(name):
            raise ValueError(f"invalid HTTP header name {name!r}")
        if len(_KNOWN_NAMES) < 1024:
            _KNOWN_NAMES.add(name)
    if "\r" in value or "\n" in value or "\0" in value:
        raise ValueError(f"the value of header {name!r} contains a line break or NUL")
    if not value.isascii():
        try:  # a message that never shows the value (it may be a key)
            value.encode("latin-1")
        except UnicodeEncodeError:
            raise ValueError(f"the value of header {name!r} has characters outside Latin-1") from None


@dataclass(frozen=True, slots=True)
class Proxy:
    """An HTTP forward proxy on the way out: ``CONNECT`` tunnels for TLS upstreams, absolute-form
    requests for plain ones. ``authorization`` is a ``Proxy-Authorization`` value: a secret."""

    host: str
    port: int
    authorization: str | None = None

    def __repr__(self) -> str:  # never shows the credentials
        return f"Proxy({self.host}:{self.port}{', with credentials' if self.authorization else ''})"

    @classmethod
    def from_url(cls, url: str) -> Proxy:
        parts = urlsplit(url if "://" in url else "http://" + url)
        if parts.scheme != "http":
            raise ValueError(f"unsupported proxy scheme {parts.scheme!r} (only http:// proxies)")
        if not parts.hostname:
            raise ValueError("no host in the proxy URL")
        authorization = None
        if parts.username is not None:
            pair = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
            authorization = "Basic " + base64.b64encode(pair.encode()).decode()
        return cls(parts.hostname, parts.port or 80, authorization)


def proxy_from_environment(base_url: str, environ: Mapping[str, str] | None = None) -> Proxy | None:
    """The proxy that ``HTTPS_PROXY`` / ``HTTP_PROXY`` / ``NO_PROXY`` (either case) name for a URL.

    The conventions of curl and Python's urllib: the scheme of the upstream picks the variable,
    ``NO_PROXY`` lists hosts, domains (``.example.com``), IPs or ``*`` that go direct.
    """
    proxies = (
        {k.lower()[:-6]: v for k, v in environ.items() if k.lower().endswith("_proxy") and v}
        if environ is not None
        else urllib.request.getproxies_environment()
    )
    parts = urlsplit(base_url)
    url = proxies.get(parts.scheme)
    if not url or not parts.hostname:
        return None
    if _bypassed(parts.hostname, parts.port, proxies.get("no", "")):
        return None
    return Proxy.from_url(url)


def _bypassed(host: str, port: int | None, no_proxy: str) -> bool:
    """curl's NO_PROXY rules: ``*``, a host or IP, or a domain matching itself and its subdomains
    (with or without a leading dot), optionally with ``:port``."""
    host = host.lower().strip("[]")
    for entry in (e.strip().lower() for e in no_proxy.split(",")):
        if entry == "*":
            return True
        name, _, entry_port = entry.rpartition(":") if entry.count(":") == 1 else (entry, "", "")
        if entry_port and (not entry_port.isdigit() or int(entry_port) != port):
            continue
        name = name.strip("[]").lstrip(".")
        if name and (host == name or host.endswith("." + name)):
            return True
    return False


class Endpoint:
    """One upstream deployment's fixed request parts, built once per config and reused per call."""

    __slots__ = (
        "_block",
        "_query_string",
        "_starts",
        "connect_seconds",
        "header_names",
        "host",
        "origin",
        "port",
        "prefix",
        "proxy",
        "query",
        "read_idle_seconds",
        "tls",
    )

    def __init__(
        self,
        base_url: str,
        headers: Mapping[str, str] | None = None,
        *,
        query: Mapping[str, str] | None = None,
        connect_seconds: float = 10.0,
        read_idle_seconds: float = 60.0,
        proxy: Proxy | None = None,
    ) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https"):
            raise ValueError(f"unsupported URL scheme {parts.scheme!r} (http or https)")
        if not parts.hostname:
            raise ValueError(f"no host in URL {base_url!r}")
        self.tls = parts.scheme == "https"
        default_port = 443 if self.tls else 80
        self.host = parts.hostname
        self.port = parts.port or default_port
        host = f"[{self.host}]" if ":" in self.host else self.host
        self.origin = f"{parts.scheme}://{host}:{self.port}"
        self.prefix = quote(parts.path.rstrip("/"), safe=_PATH_SAFE)
        self.proxy = proxy
        if proxy is not None and not self.tls:  # through the proxy: absolute-form request target
            self.prefix = self.origin + self.prefix
        self.query = dict(query or {})
        self._query_string = "?" + urlencode(self.query) if self.query else ""
        self.connect_seconds = connect_seconds
        self.read_idle_seconds = read_idle_seconds
        lines = [f"Host: {host if self.port == default_port else f'{host}:{self.port}'}"]
        if proxy is not None and proxy.authorization is not None and not self.tls:
            check_header("Proxy-Authorization", proxy.authorization)
            lines.append(f"Proxy-Authorization: {proxy.authorization}")
        for name, value in (headers or {}).items():
            check_header(name, value)
            lines.append(f"{name}: {value}")
        self.header_names = frozenset(name.lower() for name in (headers or {}))
        """Lower-case names of the headers every request carries (extra headers of the same name are not sent)."""
        self._block = ("\r\n".join(lines) + "\r\n").encode("latin-1")
        self._starts: dict[str, dict[str, bytes]] = {}
        """Request line and fixed headers by method, then path (without a client query), made once.
        Keyed by the strings themselves: a (method, path) tuple would be built, hashed and compared
        per request."""

    def head(
        self,
        method: str,
        path: str,
        query: Mapping[str, str] | None,
        extra: Sequence[tuple[str, str]],
        content_type: str | None,
        length: int | None,
    ) -> bytes:
        """Request line and headers, ready to write.

        ``query`` holds the client's parameters (a multidict when a name repeats: every pair is
        sent); the configured ones always win: a client's parameter of the same name is dropped.
        """
        # The usual case: a path this endpoint served before (create: always the same).
        paths = None if query else self._starts.get(method)
        start = None if paths is None else paths.get(path)
        if start is None:
            start = self._start(method, path, query)
            if not query:
                if paths is None:  # the gateway's few methods (bounded all the same)
                    if len(self._starts) >= _MAX_REMEMBERED:
                        self._starts.clear()
                    paths = self._starts[method] = {}
                elif len(paths) >= _MAX_REMEMBERED:  # paths with ids churn; the usual ones come back
                    paths.clear()
                paths[path] = start
        parts = [start]
        for name, value in extra:
            # The full check only for what the quick one cannot vouch for: a name not seen before, or
            # a value beyond ASCII or with CR, LF or NUL (what check_header refuses of an ASCII value).
            # Three substring tests cost less than isprintable(), which looks up every character.
            if name not in _KNOWN_NAMES or not value.isascii() or "\r" in value or "\n" in value or "\0" in value:
                check_header(name, value)
            parts.append(f"{name}: {value}\r\n".encode("latin-1"))
        if content_type is not None:
            line = _TYPE_LINES.get(content_type)
            if line is None:
                check_header("Content-Type", content_type)
                line = b"Content-Type: " + content_type.encode("latin-1") + b"\r\n"
                if len(_TYPE_LINES) < _MAX_REMEMBERED:
                    _TYPE_LINES[content_type] = line
            parts.append(line)
        parts.append(b"\r\n" if length is None else b"Content-Length: %d\r\n\r\n" % length)
        return b"".join(parts)

    def _start(self, method: str, path: str, query: Mapping[str, str] | None) -> bytes:
        """The request line (path quoted unless plain, configured query parameters) and fixed headers."""
        target = self.prefix + (path if _PLAIN_PATH.match(path) else quote(path, safe=_PATH_SAFE))
        if query:
            configured = self.query
            target += "?" + urlencode(
                [*configured.items(), *((name, value) for name, value in query.items() if name not in configured)]
            )
        else:
            target += self._query_string
        return f"{method} {target} HTTP/1.1\r\n".encode("latin-1") + self._block
