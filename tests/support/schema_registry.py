"""A small Confluent-compatible Schema Registry for the tests, on loopback.

Why a stand-in: no real registry can run on this machine. Confluent's
Schema Registry is not published on Maven Central (only on Confluent's own
repository) and Karapace is not on PyPI; those are the registries users run.
This serves the part of the REST API v1 that producers and consumers use,
with the same paths, status codes, error bodies and content type:

- POST /subjects/{subject}/versions {"schema": "..."} → {"id": N}. The same
  schema (compared by its parsed JSON) gets the same global id, under any
  subject, as the real registry does; a new schema gets the next id.
- GET /schemas/ids/{id} → {"schema": "..."}; 404 with error_code 40403.
- GET /subjects → [...]; GET /subjects/{subject}/versions → [1, 2, ...].
- HTTP basic auth when `user`/`password` are given: 401 otherwise.

Not served: compatibility checks, schema references, deletes, modes.

`requests` lists (method, path) of every call, for tests that check what the
collector asked; `start()`/`stop()` can be called again on the same port,
to play a registry that is down at start.
"""

from __future__ import annotations

import base64
import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

CONTENT_TYPE = "application/vnd.schemaregistry.v1+json"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class SchemaRegistryStandIn:
    """See the module docstring."""

    def __init__(self, port: int | None = None, user: str | None = None,
                 password: str | None = None) -> None:
        self.port = port or _free_port()
        self.auth = (base64.b64encode(f"{user}:{password}".encode()).decode()
                     if user is not None else None)
        self.schemas: list[str] = []  # id - 1 → schema text as first registered
        self.subjects: dict[str, list[int]] = {}  # subject → ids of its versions
        self.requests: list[tuple[str, str]] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> SchemaRegistryStandIn:
        registry = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass  # quiet: pytest shows failures, not every request

            def do_GET(self) -> None:
                registry._handle(self, "GET")

            def do_POST(self) -> None:
                registry._handle(self, "POST")

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def schema(self, schema_id: int) -> dict[str, Any]:
        parsed: dict[str, Any] = json.loads(self.schemas[schema_id - 1])
        return parsed

    # -- the REST API ----------------------------------------------------------

    def _handle(self, req: BaseHTTPRequestHandler, method: str) -> None:
        with self._lock:
            self.requests.append((method, req.path))
        if self.auth is not None and req.headers.get("Authorization") != f"Basic {self.auth}":
            return self._answer(req, 401, {"error_code": 401, "message": "Unauthorized"})
        parts = [p for p in req.path.split("?")[0].split("/") if p]
        body: Any = None
        if method == "POST":
            length = int(req.headers.get("Content-Length") or 0)
            try:
                body = json.loads(req.rfile.read(length) or b"null")
            except ValueError:
                return self._answer(req, 400, {"error_code": 400, "message": "bad JSON"})
        with self._lock:
            status, answer = self._route(method, parts, body)
        self._answer(req, status, answer)

    def _route(self, method: str, parts: list[str], body: Any) -> tuple[int, Any]:
        from urllib.parse import unquote

        if method == "GET" and parts == ["subjects"]:
            return 200, sorted(self.subjects)
        if method == "GET" and len(parts) == 3 and parts[:2] == ["schemas", "ids"]:
            if parts[2].isdigit() and 0 < int(parts[2]) <= len(self.schemas):
                return 200, {"schema": self.schemas[int(parts[2]) - 1]}
            return 404, {"error_code": 40403, "message": "Schema not found"}
        if len(parts) == 3 and parts[0] == "subjects" and parts[2] == "versions":
            subject = unquote(parts[1])
            if method == "GET":
                if subject not in self.subjects:
                    return 404, {"error_code": 40401, "message": f"Subject '{subject}' not found."}
                return 200, list(range(1, len(self.subjects[subject]) + 1))
            return self._register(subject, body)
        return 404, {"error_code": 404, "message": "HTTP 404 Not Found"}

    def _register(self, subject: str, body: Any) -> tuple[int, Any]:
        if not isinstance(body, dict) or not isinstance(body.get("schema"), str):
            return 422, {"error_code": 42201, "message": "Either the input schema or one of "
                         "its references is invalid"}
        if body.get("schemaType", "AVRO") != "AVRO":
            return 422, {"error_code": 42201, "message": "only AVRO is served here"}
        try:
            parsed = json.loads(body["schema"])
        except ValueError:
            return 422, {"error_code": 42201, "message": "Invalid schema"}
        known = [i for i, s in enumerate(self.schemas, 1) if json.loads(s) == parsed]
        if known:
            schema_id = known[0]
        else:
            self.schemas.append(body["schema"])
            schema_id = len(self.schemas)
        versions = self.subjects.setdefault(subject, [])
        if schema_id not in versions:
            versions.append(schema_id)
        return 200, {"id": schema_id}

    @staticmethod
    def _answer(req: BaseHTTPRequestHandler, status: int, answer: Any) -> None:
        data = json.dumps(answer).encode()
        req.send_response(status)
        req.send_header("Content-Type", CONTENT_TYPE)
        req.send_header("Content-Length", str(len(data)))
        req.end_headers()
        req.wfile.write(data)
