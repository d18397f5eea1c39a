"""A stub Kubernetes API server for the pilot's address gate: one answer, over HTTPS, to a bearer token.

Why: the smoke kubelet runs the pilot pod's init containers as local processes, and with the
queue GOOGLE_DASK (a LoadBalancer whose address the cloud assigns) one of them is the address
gate, which reads JupyterLab's Service from the API server before the pilot may start. This stub
plays that API server and the cloud at once: a JupyterLab Service of any release has the external
address ``EXTERNAL_IP``; any other Service, or a request without the pod's token, is refused as
RBAC would refuse it (403). The real API server and RBAC are exercised by the cluster tier
(tests/cluster/test_address_gate.py); here the point is what the real pilot reports afterwards.
"""

from __future__ import annotations

import datetime as dt
import hmac
import json
import secrets
import ssl
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from orchestrator.tls import make_session_tls

EXTERNAL_IP = "192.0.2.10"  # a never-routed test address, as the local cluster's kwok stage uses
HOST = "localhost"  # the pods' /etc/hosts resolves it; the stub's certificate names it


class StubApiServer:
    """``GET /api/v1/namespaces/<ns>/services/<release>-jupyterlab``, and nothing else."""

    def __init__(self, namespace: str, service_port: int = 80) -> None:
        self.namespace = namespace
        self.service_port = service_port
        self.token = secrets.token_urlsafe(32)
        self.tls = make_session_tls("stub-apiserver", [HOST], valid_for=dt.timedelta(hours=2))
        self.requests: list[tuple[str, int]] = []  # (path, status)
        self.port = 0

    def service(self, name: str) -> dict[str, Any]:
        return {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": name, "namespace": self.namespace},
            "spec": {"type": "LoadBalancer", "ports": [{"name": "http", "port": self.service_port}]},
            "status": {"loadBalancer": {"ingress": [{"ip": EXTERNAL_IP}]}},
        }

    def answer(self, path: str, authorization: str) -> tuple[int, dict[str, Any]]:
        prefix = f"/api/v1/namespaces/{self.namespace}/services/"
        authorized = hmac.compare_digest(authorization, f"Bearer {self.token}")
        name = path.removeprefix(prefix)
        if not authorized:
            return 401, {"kind": "Status", "code": 401, "reason": "Unauthorized"}
        if not path.startswith(prefix) or "/" in name or not name.endswith("-jupyterlab"):
            return 403, {"kind": "Status", "code": 403, "reason": "Forbidden"}
        return 200, self.service(name)

    @contextmanager
    def running(self) -> Iterator[StubApiServer]:
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                status, body = stub.answer(self.path, self.headers.get("Authorization", ""))
                stub.requests.append((self.path, status))
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                return

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        with tempfile.TemporaryDirectory() as tmp:
            cert, key = Path(tmp) / "cert.pem", Path(tmp) / "key.pem"
            cert.write_text(self.tls.cert_pem)
            key.write_text(self.tls.key_pem.get())
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(cert, key)
        server.socket = context.wrap_socket(server.socket, server_side=True)
        self.port = server.server_address[1]
        thread = threading.Thread(target=server.serve_forever, name="stub-apiserver", daemon=True)
        thread.start()
        try:
            yield self
        finally:
            server.shutdown()
            server.server_close()

    def pod_files(self) -> dict[str, str]:
        """What the gate's projected volume holds: the token, the cluster CA, the namespace."""
        return {"token": self.token, "ca.crt": self.tls.ca_pem, "namespace": self.namespace}

    def kubelet_env(self) -> dict[str, str]:
        """What a kubelet puts into every container's environment: the API server's address."""
        return {"KUBERNETES_SERVICE_HOST": HOST, "KUBERNETES_SERVICE_PORT": str(self.port)}
