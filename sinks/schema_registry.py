"""The two Schema Registry calls the collector needs (Confluent REST API v1).

- `register(subject, schema)`: POST /subjects/{subject}/versions. The
  registry answers with the schema's id; registering a schema it already
  has returns the same id, so calling this at every start is safe.
- `schema_by_id(id)`: GET /schemas/ids/{id}, for `collector consume` to read
  Confluent-framed messages with the schema they were written with.

The URL may carry a path: Apicurio's Confluent-compatible API is at
`/apis/ccompat/v7`, a registry behind a gateway under some prefix.

Production registries sit behind TLS, often with client certificates or
bearer tokens (Confluent Cloud, Apicurio behind an API gateway), so this
client takes, besides the URL:
- `ca`: a PEM file of the CA(s) to trust instead of the system's;
- `cert` (+ `key`, unless the cert file holds it): a client certificate;
- `user` / `password`: HTTP basic auth, kept out of the URL (which ends up
  in shell history and process lists); `user:password@` in the URL still
  works, the explicit settings win;
- `token`: a bearer token (`Authorization: Bearer ...`), exclusive with
  basic auth.
Credentials never appear in messages. A refusal names the setting to
check: a gateway's 400 for a missing client certificate (nginx with
`ssl_verify_client on` answers it in HTML: its `<title>` is quoted), a 401
or 403 the credentials or token in use (tests/test_kafka_registry_gateway.py
runs a real nginx with both checks in front of Apicurio).

Why not confluent_kafka.schema_registry's client (checked, 2.16): it needs
five more packages at run time (httpx2, authlib, attrs, cachetools and a
very recent certifi) on every monitored host, and its bearer mode is
Confluent Cloud's (it insists on a logical cluster id and sends
`target-sr-cluster`), while the agent makes two JSON calls at start.
These options are the standard library's ssl and urllib. The tests decode
with confluent-kafka's AvroDeserializer, the consumer's side, against a
real Apicurio.
"""

from __future__ import annotations

import base64
import functools
import json
import re
import ssl
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from collector.errors import SinkError
from collector.export import TransientSinkError

CONTENT_TYPE = "application/vnd.schemaregistry.v1+json"


def _error_detail(body: bytes) -> str:
    """The reason in an error answer: a registry's JSON `message`, else the
    `<title>` of a gateway's HTML page (nginx: "400 No required SSL certificate
    was sent"), without the status code it repeats."""
    try:
        answer = json.loads(body)
    except ValueError:
        match = re.search(rb"<title>\s*(?:\d{3}\s+)?([^<]{1,200})</title>", body, re.I)
        return match.group(1).decode(errors="replace").strip() if match else ""
    message = answer.get("message", "") if isinstance(answer, dict) else ""
    return str(message)[:300]


class RegistryError(SinkError):
    """The registry refused a call or could not be reached."""


class RegistryUnreachable(RegistryError, TransientSinkError):
    """No answer at all: worth retrying (the worker retries opening the sink)."""


class SchemaRegistry:
    """A client for one registry URL."""

    def __init__(self, url: str, *, timeout: float = 10.0, user: str = "", password: str = "",
                 token: str = "", ca: str = "", cert: str = "", key: str = "") -> None:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise RegistryError(f"schema registry URL {self._shown(url)!r}: expected "
                                "http(s)://HOST:PORT[/PATH]")
        if not user and parts.username is not None:
            user = urllib.parse.unquote(parts.username)
            password = password or urllib.parse.unquote(parts.password or "")
        if token and user:
            raise RegistryError("schema registry: a bearer token and a user/password were both "
                                "given; use one of kafka.schema_registry_token or "
                                "kafka.schema_registry_user")
        self._auth: str | None = None
        if user:
            raw = f"{user}:{password}"
            self._auth = "Basic " + base64.b64encode(raw.encode()).decode()
        elif token:
            self._auth = "Bearer " + token
        netloc = parts.hostname + (f":{parts.port}" if parts.port else "")
        self.base = urllib.parse.urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", ""))
        self.timeout = timeout
        self._context = self._tls_context(parts.scheme, ca, cert, key)

    def _tls_context(self, scheme: str, ca: str, cert: str, key: str) -> ssl.SSLContext | None:
        """The TLS settings for https (None: urllib's defaults, the system CAs)."""
        if scheme != "https":
            if ca or cert:
                raise RegistryError(f"schema registry {self.base}: a CA or client certificate "
                                    "is set but the URL is not https://")
            return None
        if not (ca or cert):
            return None
        try:
            context = ssl.create_default_context(cafile=ca or None)
        except (OSError, ssl.SSLError) as exc:
            raise RegistryError(f"config key kafka.schema_registry_ca: {ca}: cannot be read as "
                                f"PEM CA certificates ({exc})") from None
        if cert:
            try:
                context.load_cert_chain(cert, key or None)
            except (OSError, ssl.SSLError) as exc:
                raise RegistryError(f"config key kafka.schema_registry_cert: {cert}: cannot load "
                                    f"the client certificate and key ({exc}); check "
                                    "kafka.schema_registry_key") from None
        return context

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
            with urllib.request.urlopen(req, timeout=self.timeout, context=self._context) as resp:
                return json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            detail = _error_detail(exc.read()) or str(exc.reason)
            exc.close()
            raise RegistryError(f"schema registry {self.base}: {method} {path} answered "
                                f"{exc.code} {detail}".rstrip() + self._hint(exc.code, detail)
                                ) from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            if isinstance(reason, ssl.SSLError):
                raise RegistryError(f"schema registry {self.base}: TLS failed: {reason}; check "
                                    "kafka.schema_registry_ca (the registry's CA) and "
                                    "kafka.schema_registry_cert") from None
            raise RegistryUnreachable(f"schema registry {self.base} unreachable: {reason}; check "
                                      "--schema-registry") from None
        except ValueError:
            raise RegistryError(f"schema registry {self.base}: {method} {path} did not answer "
                                "JSON; is this a Schema Registry URL?") from None

    def _hint(self, code: int, detail: str) -> str:
        """Which setting to look at for a refusal (gateways answer these, not registries)."""
        if code == 400 and "certificate" in detail.lower():
            return ("; the server wants a client certificate: check kafka.schema_registry_cert "
                    "and kafka.schema_registry_key")
        if code in (401, 403):
            if self._auth and self._auth.startswith("Bearer "):
                return "; check kafka.schema_registry_token"
            if self._auth:
                return "; check kafka.schema_registry_user and kafka.schema_registry_password"
            return ("; the registry wants credentials: set kafka.schema_registry_user and "
                    "kafka.schema_registry_password, or kafka.schema_registry_token")
        return ""

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
