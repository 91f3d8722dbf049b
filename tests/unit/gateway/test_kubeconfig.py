"""Kubeconfig loading for the gateway's Kubernetes source (kubectl's merge and path rules)."""

from __future__ import annotations

import base64
import os
import ssl
from pathlib import Path
from typing import Any

import pytest
import yaml

from envtest import Pki, make_pki
from modelgate_gateway.sources.kubeconfig import KubeconfigError, kubeconfig_paths, load_kubeconfig


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


def _write(path: Path, clusters: dict[str, Any], users: dict[str, Any], contexts: dict[str, Any],
           current: str | None = None) -> Path:
    doc: dict[str, Any] = {
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": n, "cluster": c} for n, c in clusters.items()],
        "users": [{"name": n, "user": u} for n, u in users.items()],
        "contexts": [{"name": n, "context": c} for n, c in contexts.items()],
    }
    if current:
        doc["current-context"] = current
    path.write_text(yaml.safe_dump(doc))
    return path


def _b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


def test_client_certificate_data_and_ca_data(tmp_path: Path, pki: Pki) -> None:
    path = _write(tmp_path / "config",
                  {"c": {"server": "https://127.0.0.1:6443/", "certificate-authority-data": _b64(pki.ca_cert)}},
                  {"u": {"client-certificate-data": _b64(pki.admin_cert), "client-key-data": _b64(pki.admin_key)}},
                  {"ctx": {"cluster": "c", "user": "u"}}, current="ctx")
    conn = load_kubeconfig([path])
    assert (conn.server, conn.token, conn.context) == ("https://127.0.0.1:6443", None, "ctx")
    assert isinstance(conn.ssl_context, ssl.SSLContext)
    assert conn.ssl_context.verify_mode == ssl.CERT_REQUIRED and conn.ssl_context.check_hostname
    assert [c["subject"] for c in conn.ssl_context.get_ca_certs()] == [((("commonName", "envtest-ca"),),)]
    assert not list(Path(os.environ.get("TMPDIR", "/tmp")).glob("modelgate-kubeconfig-*"))  # key files removed


def test_merged_files_first_wins_and_relative_paths_resolve_next_to_their_file(tmp_path: Path, pki: Pki) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "ca.crt").write_bytes(pki.ca_cert.read_bytes())
    (tmp_path / "a" / "token").write_text("tok-1\n")
    first = _write(tmp_path / "a" / "config", {"c": {"server": "https://first", "certificate-authority": "ca.crt"}},
                   {"u": {"tokenFile": "token"}}, {"ctx": {"cluster": "c", "user": "u"}})
    second = _write(tmp_path / "second", {"c": {"server": "https://second"}}, {"u": {"token": "other"}},
                    {"ctx": {"cluster": "c", "user": "u"}, "other": {"cluster": "c", "user": "u"}}, current="ctx")
    conn = load_kubeconfig(kubeconfig_paths(f"{first}{os.pathsep}{tmp_path / 'missing'}{os.pathsep}{second}") or [])
    assert conn.server == "https://first"  # current-context from the second file, entries from the first
    assert callable(conn.token) and conn.token() == "tok-1"
    (tmp_path / "a" / "token").write_text("tok-2")  # projected tokens rotate: re-read each time
    assert conn.token() == "tok-2"
    assert load_kubeconfig([second], context="other").token == "other"


def test_plain_http_and_insecure_skip_verify(tmp_path: Path) -> None:
    plain = _write(tmp_path / "plain", {"c": {"server": "http://127.0.0.1:8001"}}, {}, {"x": {"cluster": "c"}}, "x")
    assert load_kubeconfig([plain]).ssl_context is None
    insecure = _write(tmp_path / "insecure", {"c": {"server": "https://h", "insecure-skip-tls-verify": True}},
                      {"u": {"token": "t"}}, {"x": {"cluster": "c", "user": "u"}}, "x")
    context = load_kubeconfig([insecure]).ssl_context
    assert context is not None and context.verify_mode == ssl.CERT_NONE


@pytest.mark.parametrize(("user", "cluster", "context", "message"), [
    ({"exec": {"command": "aws"}}, {}, None, "user field 'exec' is not supported"),
    ({"auth-provider": {"name": "gcp"}}, {}, None, "user field 'auth-provider' is not supported"),
    ({"token": "t"}, {"proxy-url": "http://proxy:3128"}, None, "cluster field 'proxy-url' is not supported"),
    ({"client-certificate-data": "bm90IGEgY2VydA=="}, {}, None, "client-certificate and client-key go together"),
    ({"client-key-data": "%%%"}, {}, None, "client-key-data is not valid base64"),
    ({"token": "t"}, {}, "nope", "context 'nope' is not in the kubeconfig"),
])
def test_unusable_kubeconfigs_are_refused_clearly(tmp_path: Path, user: dict[str, Any], cluster: dict[str, Any],
                                                   context: str | None, message: str) -> None:
    path = _write(tmp_path / "config", {"c": {"server": "https://h", **cluster}}, {"u": user},
                  {"x": {"cluster": "c", "user": "u"}}, "x")
    with pytest.raises(KubeconfigError, match=message.replace("(", r"\(")):
        load_kubeconfig([path], context=context)


def test_no_kubeconfig_anywhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    assert kubeconfig_paths(None) is None
    with pytest.raises(KubeconfigError, match="no kubeconfig found"):
        load_kubeconfig([tmp_path / "absent"])


def test_settings_take_kubectls_variable_and_the_flag_wins() -> None:
    from modelgate_gateway.settings import parse_settings

    assert parse_settings([], {"KUBECONFIG": "/k"}).kubeconfig == "/k"
    assert parse_settings([], {"KUBECONFIG": "/k", "MODELGATE_KUBECONFIG": "/m"}).kubeconfig == "/m"
    flagged = parse_settings(["--kubeconfig", "/f", "--kube-context", "dev"], {"KUBECONFIG": "/k"})
    assert (flagged.kubeconfig, flagged.kube_context) == ("/f", "dev")
    assert parse_settings([], {}).kubeconfig is None
