"""The operator's Kubernetes client: a 404 is the typed KubeNotFound, which the reads and writes
that expect absence turn into "nothing there"; every other failure stays a KubeApiError."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import kubernetes
import pytest

from modelgate_operator.errors import KubeApiError, KubeNotFound
from modelgate_operator.kube.client import KubeClient
from modelgate_operator.settings import OperatorSettings


class _Answer(BaseHTTPRequestHandler):
    """Answers every request with the server's ``status`` and a Kubernetes Status body."""

    def _answer(self) -> None:
        status: int = self.server.status  # type: ignore[attr-defined]
        self.server.paths.append(f"{self.command} {self.path}")  # type: ignore[attr-defined]
        body = json.dumps({"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": status}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_PATCH = do_POST = do_DELETE = _answer

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[ThreadingHTTPServer]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Answer)
    httpd.status = 404  # type: ignore[attr-defined]
    httpd.paths = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()
    thread.join(timeout=5)


@pytest.fixture
def kube(server: ThreadingHTTPServer) -> Iterator[KubeClient]:
    config = kubernetes.client.Configuration()
    config.host = f"http://127.0.0.1:{server.server_address[1]}"
    api = kubernetes.client.ApiClient(config)
    yield KubeClient(OperatorSettings(namespaces=("team-a",)), api)
    api.close()


def test_absent_objects_read_as_nothing(kube: KubeClient, server: ThreadingHTTPServer) -> None:
    assert kube.read_secret("team-a", "openai") is None
    assert kube.peering_statuses() == []
    kube.patch_route_status("team-a", "gone", {"observedGeneration": 1})  # deleted meanwhile: fine
    assert len(server.paths) == 3  # type: ignore[attr-defined]


def test_a_404_where_something_must_exist_is_a_typed_retryable_error(kube: KubeClient) -> None:
    with pytest.raises(KubeNotFound) as err:
        kube.list_routes()
    assert isinstance(err.value, KubeApiError)
    assert str(err.value) == "list ModelRoutes in team-a: HTTP 404 Not Found"


def test_other_failures_are_not_taken_for_absence(kube: KubeClient, server: ThreadingHTTPServer) -> None:
    server.status = 500  # type: ignore[attr-defined]
    with pytest.raises(KubeApiError) as err:
        kube.read_secret("team-a", "openai")
    assert not isinstance(err.value, KubeNotFound)
    assert "HTTP 500" in str(err.value)
