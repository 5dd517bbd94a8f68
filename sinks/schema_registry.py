"""The two Schema Registry calls the collector needs (Confluent REST API v1).

- `register(subject, schema)`: POST /subjects/{subject}/versions. The
  registry answers with the schema's id; registering a schema it already
  has returns the same id, so calling this at every start is safe.
- `schema_by_id(id)`: GET /schemas/ids/{id}, for `collector consume` to read
  Confluent-framed messages with the schema they were written with.

Why not confluent_kafka.schema_registry: it pulls in packages the project
does not otherwise need (httpx, authlib, attrs, cachetools, certifi), and
these two JSON calls are all the collector uses. Credentials may be given
in the URL (https://user:password@host:8081); they are sent as HTTP basic
auth and never appear in messages.
"""

from __future__ import annotations

import base64
import functools
import json
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from collector.errors import SinkError
from collector.export import TransientSinkError

CONTENT_TYPE = "application/vnd.schemaregistry.v1+json"


class RegistryError(SinkError):
    """The registry refused a call or could not be reached."""


class RegistryUnreachable(RegistryError, TransientSinkError):
    """No answer at all: worth retrying (the worker retries opening the sink)."""


class SchemaRegistry:
    """A client for one registry URL."""

    def __init__(self, url: str, timeout: float = 10.0) -> None:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise RegistryError(f"schema registry URL {self._shown(url)!r}: expected "
                                "http(s)://HOST:PORT")
        self._auth: str | None = None
        if parts.username is not None:
            raw = f"{urllib.parse.unquote(parts.username)}:{urllib.parse.unquote(parts.password or '')}"
            self._auth = "Basic " + base64.b64encode(raw.encode()).decode()
        netloc = parts.hostname + (f":{parts.port}" if parts.port else "")
        self.base = urllib.parse.urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", ""))
        self.timeout = timeout

    @staticmethod
    def _shown(url: str) -> str:
        """The URL without user:password, for messages."""
        parts = urllib.parse.urlsplit(url)
        netloc = parts.netloc.rpartition("@")[2]
        return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, "", ""))

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.base + path, data=data, method=method)
        req.add_header("Accept", CONTENT_TYPE)
        if data is not None:
            req.add_header("Content-Type", CONTENT_TYPE)
        if self._auth:
            req.add_header("Authorization", self._auth)
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                return json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            try:
                detail = json.loads(exc.read()).get("message", "")
            except ValueError:
                detail = ""
            raise RegistryError(f"schema registry {self.base}: {method} {path} answered "
                                f"{exc.code} {detail or exc.reason}".rstrip()) from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise RegistryUnreachable(f"schema registry {self.base} unreachable: {reason}; check "
                                      "--schema-registry") from None
        except ValueError:
            raise RegistryError(f"schema registry {self.base}: {method} {path} did not answer "
                                "JSON; is this a Schema Registry URL?") from None

    def register(self, subject: str, schema: dict[str, Any]) -> int:
        """Register (or look up) the schema under subject; return its global id."""
        quoted = urllib.parse.quote(subject, safe="")
        answer = self._call("POST", f"/subjects/{quoted}/versions",
                            {"schema": json.dumps(schema, separators=(",", ":"))})
        if not isinstance(answer, dict) or not isinstance(answer.get("id"), int):
            raise RegistryError(f"schema registry {self.base}: registering {subject} gave no id")
        return int(answer["id"])

    @functools.cache  # noqa: B019 - one client per process; ids never change meaning
    def schema_by_id(self, schema_id: int) -> dict[str, Any]:
        """The schema registered with this id (parsed JSON)."""
        answer = self._call("GET", f"/schemas/ids/{schema_id}")
        if not isinstance(answer, dict) or not isinstance(answer.get("schema"), str):
            raise RegistryError(f"schema registry {self.base}: schema id {schema_id}: no schema")
        result: dict[str, Any] = json.loads(answer["schema"])
        return result
