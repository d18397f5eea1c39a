"""A stub of PanDA's ``/api/v1`` for Harvester's own agent: jobs to hand out, and what came back.

Why: Harvester has no dummy communicator, and its ``[communicator]`` section cannot select another
class, so the real ``PandaCommunicator`` talks HTTP to this stub (``[pandacon] server_api_url_ssl``
and the other URL keys). It hands out the jobs a test feeds, answers ``job/get_status`` with a
command a test sets (``tobekilled``), and records every request, so the tests assert on what
reached "PanDA", never on Harvester's logs.

Endpoints (all under ``/api/v1``): ``harvester/heartbeat``, ``pilot/acquire_jobs``,
``pilot/update_jobs_bulk``, ``harvester/update_workers``, ``harvester/acquire_commands``,
``job/get_status``, ``harvester/add_dialogs``, ``harvester/report_worker_statistics``,
``metaconfig/get_resource_types``; anything else gets an empty success.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

API = "/api/v1/"


@dataclass(frozen=True)
class Call:
    """One request: its endpoint (path after /api/v1/), decoded data and raw bytes."""

    endpoint: str
    data: Any
    raw: bytes = field(repr=False, default=b"")
    at: float = field(default_factory=time.monotonic)


def ok(data: Any = None, message: str = "") -> dict[str, Any]:
    return {"success": True, "message": message, "data": data}


class StubPandaAPI:
    """The server: start with running(); feed jobs with feed(); read calls()."""

    def __init__(self) -> None:
        self.calls_: list[Call] = []
        self.to_hand_out: list[dict[str, Any]] = []
        self.job_status: dict[int, str] = {}
        self.job_command: dict[int, str] = {}
        self._lock = threading.Lock()
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                return  # the calls are the log

            def do_GET(self) -> None:
                parsed = urllib.parse.urlsplit(self.path)
                data = urllib.parse.parse_qs(parsed.query)
                self._answer(stub.handle(parsed.path, data, parsed.query.encode()))

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                try:
                    data = json.loads(body or b"{}")
                except json.JSONDecodeError:
                    data = {"undecodable": body.decode(errors="replace")}
                self._answer(stub.handle(urllib.parse.urlsplit(self.path).path, data, body))

            def _answer(self, reply: Any) -> None:
                payload = json.dumps(reply).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def feed(self, job: dict[str, Any]) -> None:
        """A job PanDA will hand out at the next acquire_jobs."""
        with self._lock:
            self.to_hand_out.append(job)
            self.job_status[int(job["PandaID"])] = "starting"

    def handle(self, path: str, data: Any, raw: bytes) -> Any:
        endpoint = path[len(API) :] if path.startswith(API) else path
        with self._lock:
            self.calls_.append(Call(endpoint, data, raw))
            if endpoint == "pilot/acquire_jobs":
                wanted = int(data.get("n_jobs", 1)) if isinstance(data, dict) else 1
                jobs, self.to_hand_out = self.to_hand_out[:wanted], self.to_hand_out[wanted:]
                return ok({"StatusCode": 0, "jobs": jobs})
            if endpoint == "pilot/update_jobs_bulk":
                replies = []
                for job in data.get("job_list", []):
                    panda_id = int(job["job_id"])
                    self.job_status[panda_id] = str(job.get("job_status"))
                    command = self.job_command.get(panda_id, "NULL")
                    replies.append(ok({"StatusCode": 0, "command": command}))
                return ok(replies)
            if endpoint == "job/get_status":
                ids = [int(i) for i in (data.get("job_ids") or [])]
                return ok(
                    [
                        {
                            "status": self.job_status.get(i, "unknown"),
                            "command": self.job_command.get(i, "NULL"),
                        }
                        for i in ids
                    ]
                )
            if endpoint == "harvester/update_workers":
                return ok([True] * len(data.get("workers", [])))
            if endpoint == "harvester/acquire_commands":
                return ok([])
            if endpoint == "metaconfig/get_resource_types":
                return ok([])
            return ok({})

    # what the tests read

    def calls(self, endpoint: str) -> list[Call]:
        with self._lock:
            return [c for c in self.calls_ if c.endpoint == endpoint]

    def worker_updates(self) -> list[dict[str, Any]]:
        """Every worker record of every harvester/update_workers, in order."""
        return [w for c in self.calls("harvester/update_workers") for w in c.data.get("workers", [])]

    def worker_states(self) -> dict[int, list[str]]:
        """workerID -> the statuses PanDA received, consecutive repeats folded."""
        states: dict[int, list[str]] = {}
        for worker in self.worker_updates():
            seen = states.setdefault(int(worker["workerID"]), [])
            if not seen or seen[-1] != worker["status"]:
                seen.append(str(worker["status"]))
        return states

    def everything_received(self) -> bytes:
        with self._lock:
            return b"\n".join(c.endpoint.encode() + b" " + c.raw for c in self.calls_)

    @contextmanager
    def running(self) -> Iterator[StubPandaAPI]:
        thread = threading.Thread(target=self.server.serve_forever, name="stub-panda-api", daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self.server.shutdown()
            self.server.server_close()
            thread.join(5)
