"""Where and how to reach a Kubernetes API server from a kubeconfig, for :class:`~.kube.KubeSource`.

In a pod the gateway uses its service account (``KubeSource.in_cluster``); from a laptop or a VM
it follows a cluster the way kubectl does: ``--kubeconfig`` (or ``$KUBECONFIG``, a
``os.pathsep``-separated list merged with kubectl's rules: the first file to name a cluster, user
or context wins, the first ``current-context`` wins), else ``~/.kube/config``. No ``kubernetes``
package: the result is an ``ssl.SSLContext`` and a bearer token, which aiohttp uses directly.

Supported: ``server``, ``certificate-authority(-data)``, ``insecure-skip-tls-verify``,
``client-certificate(-data)`` + ``client-key(-data)``, ``token``, ``tokenFile`` (re-read on each
reconnect, like a projected token). Anything else that changes how to connect or authenticate
(``exec`` and ``auth-provider`` plugins, basic auth, ``proxy-url``, ``tls-server-name``) is refused
with a clear error rather than ignored into a confusing TLS or 401 failure later.
"""

from __future__ import annotations

import base64
import binascii
import os
import shutil
import ssl
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

DEFAULT_KUBECONFIG = Path("~/.kube/config")
_UNSUPPORTED_USER = ("exec", "auth-provider", "username", "password")
_UNSUPPORTED_CLUSTER = ("proxy-url", "tls-server-name")


class KubeconfigError(ValueError):
    """The kubeconfig cannot be used; the message says which file, context or field."""


@dataclass(frozen=True, slots=True)
class KubeConnection:
    """How to reach one API server: its URL, TLS settings and bearer token (if any)."""

    server: str
    ssl_context: ssl.SSLContext | None
    """None for a plain ``http://`` server."""
    token: str | Callable[[], str] | None
    context: str
    """Name of the kubeconfig context used (for logs)."""


@dataclass(frozen=True, slots=True)
class _Entry:
    value: Mapping[str, Any]
    base: Path
    """Folder of the file that defined it: relative paths in it resolve there (kubectl's rule)."""


def _load_files(paths: Sequence[Path]) -> tuple[dict[str, dict[str, _Entry]], str | None]:
    merged: dict[str, dict[str, _Entry]] = {"clusters": {}, "users": {}, "contexts": {}}
    current: str | None = None
    found = False
    for path in paths:
        try:
            doc = yaml.safe_load(path.read_text()) or {}
        except FileNotFoundError:
            continue  # kubectl skips missing files of a list
        except (OSError, yaml.YAMLError) as exc:
            raise KubeconfigError(f"{path}: cannot read: {exc}") from exc
        if not isinstance(doc, Mapping):
            raise KubeconfigError(f"{path}: not a kubeconfig (expected a mapping)")
        found = True
        current = current or doc.get("current-context") or None
        for section, inner in (("clusters", "cluster"), ("users", "user"), ("contexts", "context")):
            for item in doc.get(section) or []:
                if isinstance(item, Mapping) and isinstance(item.get("name"), str):
                    merged[section].setdefault(item["name"], _Entry(item.get(inner) or {}, path.parent))
    if not found:
        raise KubeconfigError(f"no kubeconfig found at {os.pathsep.join(map(str, paths))}")
    return merged, current


def _data(entry: _Entry, field: str, what: str) -> bytes | None:
    """``<field>-data`` (base64) or the file ``<field>`` (relative to its kubeconfig)."""
    inline = entry.value.get(f"{field}-data")
    if inline:
        try:
            return base64.b64decode(str(inline), validate=True)
        except (binascii.Error, ValueError) as exc:
            raise KubeconfigError(f"{what}: {field}-data is not valid base64") from exc
    path = entry.value.get(field)
    if not path:
        return None
    try:
        return (entry.base / Path(str(path)).expanduser()).read_bytes()
    except OSError as exc:
        raise KubeconfigError(f"{what}: cannot read {field} {path}: {exc.strerror}") from exc


def _load_client_cert(context: ssl.SSLContext, cert: bytes, key: bytes, what: str) -> None:
    """ssl loads certificates only from files: write them to a private folder, load, delete."""
    folder = tempfile.mkdtemp(prefix="modelgate-kubeconfig-")
    try:
        os.chmod(folder, 0o700)
        cert_path, key_path = Path(folder, "client.crt"), Path(folder, "client.key")
        for path, data in ((cert_path, cert), (key_path, key)):
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
        context.load_cert_chain(str(cert_path), str(key_path))
    except ssl.SSLError as exc:
        raise KubeconfigError(f"{what}: client certificate or key unusable: {exc.reason}") from exc
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _ssl_context(cluster: _Entry, user: _Entry, where: str) -> ssl.SSLContext:
    ca = _data(cluster, "certificate-authority", f"{where} cluster")
    if cluster.value.get("insecure-skip-tls-verify") is True:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    elif ca is not None:
        context = ssl.create_default_context(cadata=ca.decode("ascii", errors="replace"))
    else:
        context = ssl.create_default_context()  # a publicly trusted API endpoint
    cert = _data(user, "client-certificate", f"{where} user")
    key = _data(user, "client-key", f"{where} user")
    if (cert is None) != (key is None):
        raise KubeconfigError(f"{where} user: client-certificate and client-key go together")
    if cert is not None and key is not None:
        _load_client_cert(context, cert, key, f"{where} user")
    return context


def _token(user: _Entry, where: str) -> str | Callable[[], str] | None:
    if user.value.get("token"):
        return str(user.value["token"])
    token_file = user.value.get("tokenFile")
    if not token_file:
        return None
    path = user.base / Path(str(token_file)).expanduser()
    if not path.is_file():
        raise KubeconfigError(f"{where} user: tokenFile {token_file} does not exist")
    return lambda: path.read_text().strip()


def load_kubeconfig(paths: Sequence[str | Path], context: str | None = None) -> KubeConnection:
    """The connection of ``context`` (default: the current context) in the merged ``paths``."""
    files = [Path(p).expanduser() for p in paths]
    merged, current = _load_files(files)
    name = context or current
    if not name:
        raise KubeconfigError("no current-context in the kubeconfig: pass --kube-context")
    if name not in merged["contexts"]:
        raise KubeconfigError(f"context {name!r} is not in the kubeconfig")
    ctx = merged["contexts"][name].value
    where = f"context {name!r}"
    cluster = merged["clusters"].get(str(ctx.get("cluster")))
    if cluster is None:
        raise KubeconfigError(f"{where}: cluster {ctx.get('cluster')!r} is not in the kubeconfig")
    user = merged["users"].get(str(ctx.get("user")), _Entry({}, files[0].parent))
    for key in _UNSUPPORTED_USER:
        if user.value.get(key):
            raise KubeconfigError(f"{where}: user field {key!r} is not supported; use a token "
                                  "(e.g. `kubectl create token`) or a client certificate")
    for key in _UNSUPPORTED_CLUSTER:
        if cluster.value.get(key):
            raise KubeconfigError(f"{where}: cluster field {key!r} is not supported")
    server = str(cluster.value.get("server") or "").rstrip("/")
    if not server.startswith(("https://", "http://")):
        raise KubeconfigError(f"{where}: cluster server {server!r} is not an http(s) URL")
    tls = _ssl_context(cluster, user, where) if server.startswith("https://") else None
    return KubeConnection(server=server, ssl_context=tls, token=_token(user, where), context=name)


def kubeconfig_paths(value: str | None) -> list[Path] | None:
    """The kubeconfig files to merge: ``value`` (a path list as in ``$KUBECONFIG``), else
    ``~/.kube/config`` if it exists, else None (no kubeconfig: in-cluster)."""
    if value:
        return [Path(p) for p in value.split(os.pathsep) if p]
    default = DEFAULT_KUBECONFIG.expanduser()
    return [default] if default.is_file() else None
