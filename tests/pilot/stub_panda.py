"""A stub PanDA server for the pinned pilot: queue and storage data, updateJob, a payload sink.

Why: the real pilot must run in the tests without the real PanDA server or CRIC. It needs four
things from the network (see the pilot tier's README): the queue's data (``queuedata_url`` and
``queues_url`` of its configuration), the storage endpoints (``storages_url``: must not be empty),
``updateJob``, ``updateWorkerPilotStatus`` (push mode) and, only outside push mode, ``getJob``. Everything it receives is recorded, so the
tests assert on what reached "PanDA", never on the pilot's log.

The payload of the tier's jobs reports to ``/payload`` (one record per run), which is how a test
counts the payload's runs and sees the environment it ran with.
"""

from __future__ import annotations

import gzip
import json
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

# An updateJob reply: a PanDA command for the pilot ("NULL": carry on; "tobekilled": kill the job).
Replier = Callable[[dict[str, str]], str]


@dataclass(frozen=True)
class Record:
    """One request the stub received: path, method and its decoded parameters."""

    method: str
    path: str
    data: dict[str, Any]
    raw: bytes = field(repr=False, default=b"")
    at: float = field(default_factory=time.monotonic)


def decode_body(body: bytes) -> dict[str, Any]:
    """The pilot's request body: form-encoded (3.7), gzip-compressed JSON (newer), or JSON."""
    if body[:2] == b"\x1f\x8b":
        body = gzip.decompress(body)
    text = body.decode("utf-8", errors="replace").strip()
    if text.startswith("{"):
        try:
            loaded = json.loads(text)
        except json.JSONDecodeError:
            loaded = None
        if isinstance(loaded, dict):
            return {str(k): v for k, v in loaded.items()}
    return {k: v[-1] for k, v in urllib.parse.parse_qs(text, keep_blank_values=True).items()}


def queue_data(queue: str) -> dict[str, Any]:
    """The queue as PanDA's schedconfig shows it, reduced to what the pilot reads."""
    return {
        "nickname": queue,
        "name": queue,
        "siteid": queue,
        "site": queue,
        "atlas_site": queue,
        "resource": queue,
        "state": "ACTIVE",
        "status": "online",
        "type": "production",
        "pilot_manager": "Harvester",
        "timefloor": 0,
        "maxwdir": 10000,
        "maxrss": 4000,
        "corecount": 1,
        "catchall": "no_token_renewal",
        "container_type": "",
        "container_options": "",
        "copytools": {},
        "acopytools": {},
        "astorages": {},
        "params": {"internet_protocol_version": "IPv4"},
        "environ": "",
    }


STORAGES = {
    "STUB_DATADISK": {
        "name": "STUB_DATADISK",
        "site": "STUB",
        "type": "DATADISK",
        "state": "ACTIVE",
        "is_deterministic": True,
        "rprotocols": {},
        "arprotocols": {},
        "resource": {"name": "STUB"},
    }
}


class StubPanda:
    """The server: start() in a thread, records and replies under one lock."""

    def __init__(self, queue: str) -> None:
        self.queue = queue
        self.records: list[Record] = []
        self.repliers: dict[str, Replier] = {}
        self._lock = threading.RLock()  # a replier may read the records
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                return  # the records are the log

            def do_GET(self) -> None:
                parsed = urllib.parse.urlsplit(self.path)
                data = {k: v[-1] for k, v in urllib.parse.parse_qs(parsed.query).items()}
                self._answer(stub.handle("GET", parsed.path, data, b""))

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                parsed = urllib.parse.urlsplit(self.path)
                self._answer(stub.handle("POST", parsed.path, decode_body(body), body))

            def _answer(self, reply: Any) -> None:
                payload = json.dumps(reply).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = int(self.server.server_address[1])
        self.url = f"http://127.0.0.1:{self.port}"

    def handle(self, method: str, path: str, data: dict[str, Any], raw: bytes) -> Any:
        """Record the request and answer it as PanDA would."""
        with self._lock:
            self.records.append(Record(method, path, data, raw))
            if path.endswith("/updateJob"):
                replier = self.repliers.get(str(data.get("jobId", "")))
                command = replier(dict(data)) if replier is not None else "NULL"
                return {"StatusCode": 0, "command": command}
        if path.startswith("/cache/schedconfig/") and path.endswith(".all.json"):
            return queue_data(self.queue)
        if path.startswith("/cache/schedconfig/"):
            return {self.queue: queue_data(self.queue)}
        if path.endswith("ddmendpoints.json"):
            return STORAGES
        if path.endswith("/getJob"):
            return {"StatusCode": 20}  # no job: only a pilot outside push mode asks
        return {"StatusCode": 0}

    # what the tests read

    def requests(self, path_suffix: str, panda_id: str | None = None) -> list[Record]:
        with self._lock:
            found = [r for r in self.records if r.path.endswith(path_suffix)]
        if panda_id is not None:
            found = [r for r in found if str(r.data.get("jobId", r.data.get("pandaid", ""))) == panda_id]
        return found

    def updates(self, panda_id: str) -> list[dict[str, Any]]:
        """Every updateJob of one job, in order."""
        return [r.data for r in self.requests("/updateJob", panda_id)]

    def states(self, panda_id: str) -> list[str]:
        """The job's states in order, repeated heartbeats folded."""
        states: list[str] = []
        for update in self.updates(panda_id):
            if not states or states[-1] != str(update.get("state")):
                states.append(str(update.get("state")))
        return states

    def payload_runs(self, panda_id: str) -> list[dict[str, Any]]:
        return [r.data for r in self.requests("/payload", panda_id)]

    def everything_received(self) -> bytes:
        """Every byte of every request (paths and bodies), for the no-secret check."""
        with self._lock:
            return b"\n".join(
                r.path.encode() + b" " + r.raw + json.dumps(r.data).encode() for r in self.records
            )

    @contextmanager
    def running(self) -> Iterator[StubPanda]:
        thread = threading.Thread(target=self.server.serve_forever, name="stub-panda", daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self.server.shutdown()
            self.server.server_close()
            thread.join(5)
