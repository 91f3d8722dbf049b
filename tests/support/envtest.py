"""A throwaway Kubernetes control plane for tests: etcd + kube-apiserver (+ kube-controller-manager).

The binaries come from ``$KUBEBUILDER_ASSETS`` (the envtest convention; ``../shared/envtest/install.sh``
fills such a folder). Everything listens on fresh 127.0.0.1 ports and lives in a fresh run folder,
so several sessions (other engineers, CI jobs) can run side by side. One CA signs the serving
certificate and the admin client certificate (``O=system:masters``, bypasses RBAC); a separate RSA
key signs ServiceAccount tokens, so TokenRequest works and RBAC applies to those tokens.

Without a scheduler or kubelet, Pods stay Pending; the controller-manager (optional) provides
ServiceAccounts, garbage collection and namespace deletion.
"""

from __future__ import annotations

import base64
import datetime
import functools
import ipaddress
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

ASSETS_ENV = "KUBEBUILDER_ASSETS"
INSTALL_HINT = (
    f"{ASSETS_ENV} is not set: run `eval \"$(../shared/envtest/install.sh /tmp/envtest)\"` "
    "or use .ci/run (make test)"
)


class EnvtestError(RuntimeError):
    """The control plane could not be started (the message carries the process log's tail)."""


def assets_dir() -> Path | None:
    """The envtest assets folder, or None when ``$KUBEBUILDER_ASSETS`` is unset or empty."""
    raw = os.environ.get(ASSETS_ENV, "").strip()
    return Path(raw) if raw else None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --- PKI -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Pki:
    ca_cert: Path
    serving_cert: Path
    serving_key: Path
    admin_cert: Path
    admin_key: Path
    sa_key: Path


def _pem_key(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                             serialization.NoEncryption())


def _cert(subject: x509.Name, key: ec.EllipticCurvePrivateKey, issuer: x509.Name,
          issuer_key: ec.EllipticCurvePrivateKey, extensions: list[tuple[x509.ExtensionType, bool]]) -> bytes:
    now = datetime.datetime.now(datetime.UTC)
    builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer)
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(minutes=5))
               .not_valid_after(now + datetime.timedelta(days=1)))
    for extension, critical in extensions:
        builder = builder.add_extension(extension, critical=critical)
    return builder.sign(issuer_key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)


def make_pki(folder: Path) -> Pki:
    """CA, serving certificate for 127.0.0.1/localhost, admin client certificate, SA signing key."""
    folder.mkdir(parents=True, exist_ok=True)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "envtest-ca")])
    ca = _cert(ca_name, ca_key, ca_name, ca_key, [
        (x509.BasicConstraints(ca=True, path_length=None), True),
        (x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
                       key_encipherment=False, data_encipherment=False, key_agreement=False,
                       encipher_only=False, decipher_only=False), True),
    ])
    serving_key = ec.generate_private_key(ec.SECP256R1())
    serving = _cert(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]), serving_key,
                    ca_name, ca_key, [
                        (x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                                                      x509.DNSName("localhost")]), False),
                        (x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False),
                    ])
    admin_key = ec.generate_private_key(ec.SECP256R1())
    admin = _cert(x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "system:masters"),
                             x509.NameAttribute(NameOID.COMMON_NAME, "admin")]), admin_key,
                  ca_name, ca_key, [(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), False)])
    sa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    files = {"ca.crt": ca, "serving.crt": serving, "serving.key": _pem_key(serving_key),
             "admin.crt": admin, "admin.key": _pem_key(admin_key), "sa.key": _pem_key(sa_key)}
    for name, data in files.items():
        (folder / name).write_bytes(data)
        (folder / name).chmod(0o600)
    return Pki(ca_cert=folder / "ca.crt", serving_cert=folder / "serving.crt", serving_key=folder / "serving.key",
               admin_cert=folder / "admin.crt", admin_key=folder / "admin.key", sa_key=folder / "sa.key")


def kubeconfig_document(server: str, ca_pem: bytes, *, client_cert: bytes | None = None,
                        client_key: bytes | None = None, token: str | None = None,
                        namespace: str | None = None) -> dict[str, object]:
    """A one-context kubeconfig with inline CA data and either a client certificate or a token."""
    def b64(data: bytes) -> str:
        return base64.b64encode(data).decode()

    user: dict[str, str] = {}
    if client_cert is not None and client_key is not None:
        user = {"client-certificate-data": b64(client_cert), "client-key-data": b64(client_key)}
    if token is not None:
        user["token"] = token
    context: dict[str, str] = {"cluster": "envtest", "user": "user"}
    if namespace:
        context["namespace"] = namespace
    return {
        "apiVersion": "v1", "kind": "Config", "preferences": {},
        "clusters": [{"name": "envtest", "cluster": {"server": server,
                                                    "certificate-authority-data": b64(ca_pem)}}],
        "users": [{"name": "user", "user": user}],
        "contexts": [{"name": "envtest", "context": context}],
        "current-context": "envtest",
    }


# --- processes -------------------------------------------------------------------------------


# Runs the binary through a tiny Python launcher that asks Linux to SIGKILL it when the test process
# dies (PR_SET_PDEATHSIG survives execve), so no apiserver outlives a killed test run. A launcher
# rather than ``preexec_fn``, which is unsafe once the test process has threads.
_LAUNCHER = (
    "import ctypes, os, sys\n"
    "try:\n"
    "    ctypes.CDLL(None, use_errno=True).prctl(1, 9)\n"  # PR_SET_PDEATHSIG, SIGKILL
    "except (OSError, AttributeError):\n"
    "    pass\n"
    "os.execv(sys.argv[1], sys.argv[1:])\n"
)


def terminate(popen: subprocess.Popen[bytes], timeout: float) -> None:
    """SIGTERM, then SIGKILL if the process has not exited after ``timeout`` seconds."""
    if popen.poll() is None:
        popen.send_signal(signal.SIGTERM)
        try:
            popen.wait(timeout)
        except subprocess.TimeoutExpired:
            popen.kill()
            popen.wait(5)


@dataclass
class Process:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    def tail(self, lines: int = 30) -> str:
        try:
            text = self.log.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def check_alive(self) -> None:
        code = self.popen.poll()
        if code is not None:
            raise EnvtestError(f"{self.name} exited with {code}:\n{self.tail()}")

    def stop(self, timeout: float) -> None:
        terminate(self.popen, timeout)


def _spawn(name: str, args: list[str], run_dir: Path) -> Process:
    log = run_dir / f"{name}.log"
    with log.open("wb") as out:
        popen = subprocess.Popen([sys.executable, "-c", _LAUNCHER, *args], stdout=out, stderr=subprocess.STDOUT,
                                 stdin=subprocess.DEVNULL, start_new_session=True, cwd=run_dir)
    return Process(name, popen, log)


def poll(what: str, probe: Callable[[], bool], timeout: float, *, alive: Callable[[], None],
         interval: float = 0.05) -> float:
    """Call ``probe`` until it returns True (bounded by ``timeout``); returns the seconds it took.
    ``alive`` raises when the process being waited for has died, so a crash fails fast."""
    started = time.monotonic()
    while True:
        alive()
        if probe():
            return time.monotonic() - started
        if time.monotonic() - started > timeout:
            raise EnvtestError(f"{what} not ready after {timeout:.0f} s")
        time.sleep(interval)


def _http_ok(url: str, context: ssl.SSLContext | None, expect: bytes) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2, context=context) as resp:
            return resp.status == 200 and expect in resp.read()
    except (urllib.error.URLError, ConnectionError, TimeoutError, ssl.SSLError):
        return False


# --- the control plane -------------------------------------------------------------------------


@dataclass
class ControlPlane:
    """A running etcd + kube-apiserver (+ controller-manager); stop it with :meth:`stop`."""

    assets: Path
    run_dir: Path
    pki: Pki
    port: int
    kubeconfig: Path
    processes: list[Process] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def server(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def admin_ssl_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(self.pki.ca_cert))
        context.load_cert_chain(str(self.pki.admin_cert), str(self.pki.admin_key))
        return context

    def write_kubeconfig(self, path: Path, *, token: str | None = None, namespace: str | None = None,
                         server: str | None = None) -> Path:
        """A kubeconfig for this server (or ``server``, e.g. a relay in front of it): the admin
        client certificate, or ``token`` when given."""
        ca, url = self.pki.ca_cert.read_bytes(), server or self.server
        if token is None:
            doc = kubeconfig_document(url, ca, client_cert=self.pki.admin_cert.read_bytes(),
                                      client_key=self.pki.admin_key.read_bytes(), namespace=namespace)
        else:
            doc = kubeconfig_document(url, ca, token=token, namespace=namespace)
        path.write_text(yaml.safe_dump(doc, sort_keys=False))
        path.chmod(0o600)
        return path

    def check_alive(self) -> None:
        for process in self.processes:
            process.check_alive()

    def stop(self) -> None:
        """SIGTERM in reverse start order (bounded waits, then SIGKILL); removes the run folder."""
        for process in reversed(self.processes):
            process.stop(timeout=10)
        self.processes.clear()
        shutil.rmtree(self.run_dir, ignore_errors=True)


def _binary(assets: Path, name: str) -> str:
    path = assets / name
    if not os.access(path, os.X_OK):
        raise EnvtestError(f"{path} is missing or not executable ({ASSETS_ENV}={assets}); {INSTALL_HINT}")
    return str(path)


# A command for fresh ports: (argv, readiness probe).
Launch = Callable[[list[int]], tuple[list[str], Callable[[], bool]]]


def _start_on_free_ports(plane: ControlPlane, name: str, ports: int, launch: Launch, timeout: float) -> list[int]:
    """Start ``name`` on ``ports`` fresh loopback ports and wait until its probe passes. A port taken
    by another process between choosing and binding it is retried with new ports (3 attempts)."""
    for _attempt in range(3):
        chosen = [free_port() for _ in range(ports)]
        args, probe = launch(chosen)
        proc = _spawn(name, args, plane.run_dir)
        try:
            plane.timings[name] = poll(name, probe, timeout, alive=proc.check_alive)
        except EnvtestError:
            proc.stop(timeout=5)
            if "address already in use" in proc.tail(200):
                continue
            raise
        plane.processes.append(proc)
        return chosen
    raise EnvtestError(f"{name}: no free ports after 3 attempts")


def _start_etcd(plane: ControlPlane, timeout: float) -> int:
    """etcd on two fresh ports (client, and peer: its default 2380 would collide between instances)."""
    def launch(ports: list[int]) -> tuple[list[str], Callable[[], bool]]:
        client, peer = ports
        data = plane.run_dir / "etcd"
        shutil.rmtree(data, ignore_errors=True)
        return [
            _binary(plane.assets, "etcd"), "--name", "envtest", "--data-dir", str(data),
            "--listen-client-urls", f"http://127.0.0.1:{client}",
            "--advertise-client-urls", f"http://127.0.0.1:{client}",
            "--listen-peer-urls", f"http://127.0.0.1:{peer}",
            "--initial-advertise-peer-urls", f"http://127.0.0.1:{peer}",
            "--initial-cluster", f"envtest=http://127.0.0.1:{peer}",
            "--logger", "zap", "--log-level", "warn",
        ], functools.partial(_http_ok, f"http://127.0.0.1:{client}/health", None, b'"health":"true"')

    return _start_on_free_ports(plane, "etcd", 2, launch, timeout)[0]


def _start_apiserver(plane: ControlPlane, etcd_port: int, timeout: float) -> None:
    pki = plane.pki

    def launch(ports: list[int]) -> tuple[list[str], Callable[[], bool]]:
        plane.port = ports[0]
        return [
            _binary(plane.assets, "kube-apiserver"), f"--etcd-servers=http://127.0.0.1:{etcd_port}",
            "--bind-address=127.0.0.1", "--advertise-address=127.0.0.1", f"--secure-port={plane.port}",
            f"--cert-dir={plane.run_dir / 'certs'}",
            f"--tls-cert-file={pki.serving_cert}", f"--tls-private-key-file={pki.serving_key}",
            f"--client-ca-file={pki.ca_cert}",
            "--service-account-issuer=https://kubernetes.default.svc",
            f"--service-account-key-file={pki.sa_key}", f"--service-account-signing-key-file={pki.sa_key}",
            "--service-cluster-ip-range=10.0.0.0/24", "--authorization-mode=RBAC",
            "--endpoint-reconciler-type=none", "--profiling=false",
        ], functools.partial(_http_ok, f"{plane.server}/readyz", plane.admin_ssl_context(), b"ok")

    _start_on_free_ports(plane, "kube-apiserver", 1, launch, timeout)


def _default_service_account_exists(plane: ControlPlane) -> bool:
    url = f"{plane.server}/api/v1/namespaces/default/serviceaccounts/default"
    try:
        with urllib.request.urlopen(url, timeout=2, context=plane.admin_ssl_context()) as resp:
            return resp.status == 200 and json.loads(resp.read())["metadata"]["name"] == "default"
    except (urllib.error.URLError, ConnectionError, TimeoutError, ssl.SSLError):
        return False


def _start_controller_manager(plane: ControlPlane, timeout: float) -> None:
    proc = _spawn("kube-controller-manager", [
        _binary(plane.assets, "kube-controller-manager"), f"--kubeconfig={plane.kubeconfig}",
        "--leader-elect=false", "--secure-port=0",
        f"--service-account-private-key-file={plane.pki.sa_key}", f"--root-ca-file={plane.pki.ca_cert}",
        # Hand-made Nodes would be tainted unreachable after ~60 s: nothing here needs that controller.
        "--controllers=*,-node-lifecycle-controller",
    ], plane.run_dir)
    plane.processes.append(proc)
    # Ready once its ServiceAccount controller has created `default` in namespace default.
    plane.timings["kube-controller-manager"] = poll(
        "kube-controller-manager", lambda: _default_service_account_exists(plane), timeout,
        alive=proc.check_alive)


def start(assets: Path, *, controller_manager: bool = True, timeout: float = 60,
          run_dir: Path | None = None) -> ControlPlane:
    """Start a fresh control plane from ``assets``; raises :class:`EnvtestError` (after stopping
    whatever started) when a part does not become ready within ``timeout`` seconds."""
    started = time.monotonic()
    run = run_dir or Path(tempfile.mkdtemp(prefix="modelgate-envtest-"))
    plane = ControlPlane(assets=assets, run_dir=run, pki=make_pki(run / "pki"), port=0,
                         kubeconfig=run / "kubeconfig")
    try:
        etcd_port = _start_etcd(plane, timeout)
        _start_apiserver(plane, etcd_port, timeout)
        plane.write_kubeconfig(plane.kubeconfig)
        if controller_manager:
            _start_controller_manager(plane, timeout)
    except BaseException:
        plane.stop()
        raise
    plane.timings["total"] = time.monotonic() - started
    return plane
