"""Talking to the envtest control plane from tests: raw REST with the admin certificate, server-side
apply of arbitrary objects (discovery by hand, no cache files), CRDs applied and waited for
``Established``, fresh namespaces, ServiceAccount tokens (TokenRequest) and ``kubernetes`` clients.

Raw HTTP (urllib) rather than the ``kubernetes`` package where a test asserts on what the API server
says (admission messages, Table cells): the response is exactly the server's.
"""

from __future__ import annotations

import json
import re
import secrets
import ssl
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import kubernetes
import yaml

from envtest import ControlPlane

ROOT = Path(__file__).resolve().parents[2]
# The repository's CRDs as the chart installs them (crds/ is the source; the chart adds kopf's).
REPO_CRDS = tuple(sorted((ROOT / "charts" / "modelgate" / "crds").glob("*.yaml")))
FIELD_MANAGER = "modelgate-tests"
TABLE = "application/json;as=Table;v=v1;g=meta.k8s.io"


class ApiError(Exception):
    """A non-2xx answer of the API server; ``body`` is its decoded Status (or raw text)."""

    def __init__(self, method: str, path: str, status: int, body: Any) -> None:
        self.status = status
        self.body = body
        message = body.get("message", body) if isinstance(body, dict) else body
        super().__init__(f"{method} {path}: {status} {message}")

    @property
    def message(self) -> str:
        return str(self.body.get("message", "")) if isinstance(self.body, dict) else str(self.body)


@dataclass
class Cluster:
    """The session's control plane, as tests use it."""

    plane: ControlPlane
    _plurals: dict[tuple[str, str], tuple[str, bool]] = field(default_factory=dict)
    _clients: list[kubernetes.client.ApiClient] = field(default_factory=list)

    # -- where it is ---------------------------------------------------------------------------
    @property
    def kubeconfig(self) -> Path:
        """Admin kubeconfig (client certificate in ``system:masters``, inline CA data)."""
        return self.plane.kubeconfig

    @property
    def server(self) -> str:
        return self.plane.server

    @property
    def ca_cert(self) -> Path:
        return self.plane.pki.ca_cert

    @property
    def admin_cert(self) -> Path:
        return self.plane.pki.admin_cert

    @property
    def admin_key(self) -> Path:
        return self.plane.pki.admin_key

    # -- clients -------------------------------------------------------------------------------
    def api_client(self, token: str | None = None) -> kubernetes.client.ApiClient:
        """A ``kubernetes`` client for this server: admin certificate, or a bearer ``token`` (RBAC
        applies). Closed when the session ends."""
        config = kubernetes.client.Configuration()
        config.host = self.server
        config.ssl_ca_cert = str(self.ca_cert)
        if token is None:
            config.cert_file, config.key_file = str(self.admin_cert), str(self.admin_key)
        else:
            config.api_key = {"authorization": f"Bearer {token}"}
        client = kubernetes.client.ApiClient(config)
        self._clients.append(client)
        return client

    def close(self) -> None:
        for client in self._clients:
            client.close()
        self._clients.clear()

    def write_kubeconfig(self, path: Path, *, token: str | None = None, namespace: str | None = None,
                         server: str | None = None) -> Path:
        return self.plane.write_kubeconfig(path, token=token, namespace=namespace, server=server)

    # -- raw REST ------------------------------------------------------------------------------
    def request(self, method: str, path: str, body: Any = None, *, content_type: str = "application/json",
                accept: str = "application/json", token: str | None = None, timeout: float = 10) -> Any:
        """One API call; returns the decoded JSON answer, raises :class:`ApiError` on non-2xx."""
        data = None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
        req = urllib.request.Request(self.server + path, data=data, method=method,
                                     headers={"Accept": accept, "Content-Type": content_type})
        if token is not None:
            req.add_header("Authorization", f"Bearer {token}")
        context = ssl.create_default_context(cafile=str(self.ca_cert))
        if token is None:
            context.load_cert_chain(str(self.admin_cert), str(self.admin_key))
        try:
            with urllib.request.urlopen(req, timeout=timeout, context=context) as resp:
                raw = resp.read()
        except urllib.error.HTTPError as exc:
            text = exc.read().decode(errors="replace")
            try:
                decoded: Any = json.loads(text)
            except ValueError:
                decoded = text
            raise ApiError(method, path, exc.code, decoded) from None
        return json.loads(raw) if raw else None

    def _resource(self, api_version: str, kind: str) -> tuple[str, bool]:
        """(plural, namespaced) of a kind, from the server's discovery (remembered per session;
        re-read when unknown, e.g. right after a CRD was established)."""
        key = (api_version, kind)
        if key not in self._plurals:
            base = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
            for res in self.request("GET", base)["resources"]:
                if "/" not in res["name"]:
                    self._plurals[(api_version, res["kind"])] = (res["name"], res["namespaced"])
        if key not in self._plurals:
            raise KeyError(f"{kind} is not served under {api_version}")
        return self._plurals[key]

    def path_of(self, api_version: str, kind: str, namespace: str | None = None, name: str | None = None) -> str:
        plural, namespaced = self._resource(api_version, kind)
        base = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
        path = f"{base}/namespaces/{namespace}/{plural}" if namespaced and namespace else f"{base}/{plural}"
        return f"{path}/{name}" if name else path

    def apply(self, obj: dict[str, Any], namespace: str | None = None) -> dict[str, Any]:
        """Server-side apply of one object (forced: the tests own every field they send), with
        strict field validation."""
        meta = obj["metadata"]
        ns = meta.get("namespace") or namespace
        _, namespaced = self._resource(obj["apiVersion"], obj["kind"])
        if namespaced:
            obj = {**obj, "metadata": {**meta, "namespace": ns}}
        path = self.path_of(obj["apiVersion"], obj["kind"], ns if namespaced else None, meta["name"])
        # Strict, as kubectl asks: an unknown field is an error, not silently pruned.
        query = urllib.parse.urlencode({"fieldManager": FIELD_MANAGER, "force": "true", "fieldValidation": "Strict"})
        return dict(self.request("PATCH", f"{path}?{query}", obj, content_type="application/apply-patch+yaml"))

    def apply_all(self, objects: Iterable[dict[str, Any]], namespace: str | None = None) -> list[dict[str, Any]]:
        return [self.apply(obj, namespace) for obj in objects]

    def get(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> dict[str, Any]:
        return dict(self.request("GET", self.path_of(api_version, kind, namespace, name)))

    # -- CRDs, namespaces, tokens ----------------------------------------------------------------
    def apply_crds(self, paths: Iterable[Path] = REPO_CRDS, timeout: float = 20) -> list[str]:
        """Apply CRD files and wait until each is ``Established``; returns the CRD names."""
        names = []
        for path in paths:
            for doc in yaml.safe_load_all(path.read_text()):
                if doc and doc.get("kind") == "CustomResourceDefinition":
                    names.append(self.apply(doc)["metadata"]["name"])
        for name in names:
            self.wait_established(name, timeout)
        return names

    def wait_established(self, crd: str, timeout: float = 20) -> None:
        path = f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{crd}"
        deadline = time.monotonic() + timeout
        while True:
            conditions = (self.request("GET", path).get("status") or {}).get("conditions") or []  # null at first
            if any(c["type"] == "Established" and c["status"] == "True" for c in conditions):
                # New kinds are served from this moment; forget what discovery said before.
                self._plurals.clear()
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"CRD {crd} not Established after {timeout} s: {conditions}")
            time.sleep(0.05)

    def create_namespace(self, hint: str = "test", labels: dict[str, str] | None = None) -> str:
        """A fresh namespace named after ``hint`` (DNS-1123, random suffix). Deleting it is left
        to the caller (deletion takes seconds; tests never wait for it)."""
        base = re.sub(r"[^a-z0-9-]+", "-", hint.lower()).strip("-")[:40].strip("-") or "test"
        name = f"{base}-{secrets.token_hex(3)}"
        self.request("POST", "/api/v1/namespaces",
                     {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels or {}}})
        return name

    def delete_namespace(self, name: str) -> None:
        try:
            self.request("DELETE", f"/api/v1/namespaces/{name}")
        except ApiError as exc:
            if exc.status != 404:
                raise

    def wait_for_service_account(self, namespace: str, name: str = "default", timeout: float = 20) -> None:
        """Wait (bounded) for a ServiceAccount, e.g. the controller-manager's ``default``."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.request("GET", f"/api/v1/namespaces/{namespace}/serviceaccounts/{name}")
                return
            except ApiError as exc:
                if exc.status != 404 or time.monotonic() > deadline:
                    raise
            time.sleep(0.05)

    def service_account_token(self, namespace: str, name: str, *, create: bool = True,
                              expiration_seconds: int = 3600) -> str:
        """A bearer token of ServiceAccount ``namespace/name`` (TokenRequest, as ``kubectl create
        token``); the account is created first unless ``create`` is False."""
        if create:
            try:
                self.request("POST", f"/api/v1/namespaces/{namespace}/serviceaccounts",
                             {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name}})
            except ApiError as exc:
                if exc.status != 409:
                    raise
        answer = self.request(
            "POST", f"/api/v1/namespaces/{namespace}/serviceaccounts/{name}/token",
            {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
             "spec": {"expirationSeconds": expiration_seconds}})
        return str(answer["status"]["token"])

    def table(self, api_version: str, kind: str, namespace: str | None = None) -> dict[str, Any]:
        """The server-side Table (what ``kubectl get`` prints) of a resource list."""
        return dict(self.request("GET", self.path_of(api_version, kind, namespace), accept=TABLE))
