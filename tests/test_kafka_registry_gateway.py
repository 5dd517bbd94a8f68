"""The registry behind a gateway: TLS, a client certificate and a bearer token.

nginx (tests/support/nginx_gateway.py) terminates TLS with `ssl_verify_client
on`, admits one bearer token and proxies to the session's real Apicurio with
the registry user's own credentials, as production gateways do. The
collector talks to the gateway only, with kafka.schema_registry_ca, _cert,
_key and _token; every message it writes is decoded by confluent-kafka's
AvroDeserializer against the registry itself. Without the client
certificate, or with a wrong token, the collector stops at start (exit 4, a
sink error) with one line naming the cause and the setting to fix.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from collector.errors import SinkError
from tests.helpers import CollectorProcess
from tests.kafka_fixtures import Burst, new_topic, read_topic
from tests.support.apicurio import ApicurioRegistry
from tests.support.kafka_broker import KafkaBroker
from tests.support.nginx_gateway import RegistryGateway
from tests.support.tls import ensure_tls_material, issue_certificate, make_ca
from tests.test_kafka_delivery import run_kafka
from tests.test_kafka_registry import NO_SCAN, deserializer

pytestmark = pytest.mark.kafka


@dataclass(frozen=True)
class Gateway:
    url: str
    token: str
    ca: Path  # the gateway's server CA
    cert: Path  # a client certificate the gateway trusts
    key: Path


@pytest.fixture(scope="module")
def gateway(_session_registry: ApicurioRegistry,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    reg = _session_registry
    if not reg.is_running():
        reg.start()
    base = tmp_path_factory.mktemp("gateway")
    tls = ensure_tls_material(base / "tls")
    client_ca, client_ca_key = make_ca(base / "clients", "clients-ca", "registry clients CA")
    cert, key = issue_certificate(base / "clients", "collector", client_ca, client_ca_key,
                                  dns_names=("collector",), ip_addresses=(), server=False)
    token = secrets.token_urlsafe(24)
    with RegistryGateway(base / "nginx", upstream_port=reg.port, upstream_user=reg.user,
                         upstream_password=reg.password, cert=tls.server_cert,
                         key=tls.server_key, client_ca=client_ca, token=token) as gw:
        yield Gateway(gw.url, token, tls.ca_pem, cert, key)


def gateway_env(gw: Gateway, *, cert: bool = True, token: str | None = None) -> dict[str, str]:
    env = {**NO_SCAN, "COLLECTOR_KAFKA_SCHEMA_REGISTRY_CA": str(gw.ca),
           "COLLECTOR_KAFKA_SCHEMA_REGISTRY_TOKEN": token if token is not None else gw.token}
    if cert:
        env["COLLECTOR_KAFKA_SCHEMA_REGISTRY_CERT"] = str(gw.cert)
        env["COLLECTOR_KAFKA_SCHEMA_REGISTRY_KEY"] = str(gw.key)
    return env


def start_failure(kafka: KafkaBroker, gw: Gateway, env: dict[str, str]) -> str:
    """The collector's one stderr line when it stops at start."""
    with CollectorProcess("--sink", "kafka", "--kafka-bootstrap", kafka.bootstrap,
                          "--kafka-topic", new_topic("gateway-refused"), "--kafka-format", "avro",
                          "--schema-registry", gw.url, env=env) as col:
        assert col.wait(60) == SinkError.exit_code, col.stderr
    assert len(col.stderr_lines) == 1, col.stderr
    return col.stderr_lines[0]


def test_registers_and_produces_through_the_gateway(
        kafka: KafkaBroker, registry: ApicurioRegistry, gateway: Gateway) -> None:
    topic = new_topic("gateway")
    with run_kafka(kafka, topic, "--kafka-format", "avro", "--schema-registry", gateway.url,
                   env=gateway_env(gateway)) as col:
        Burst().spawn(2)
        assert col.stop() == 0, col.stderr
    msgs = read_topic(kafka.bootstrap, topic, until=lambda m: len(m) >= 4,
                      decode=deserializer(registry, topic))
    (schema_id,) = {m.record[0] for m in msgs}
    # registered through the gateway: the registry itself has it under the topic's subject
    assert registry.call("GET", f"/subjects/{topic}-value/versions/latest")["id"] == schema_id


def test_without_the_client_certificate_it_stops_at_start_in_one_line(
        kafka: KafkaBroker, gateway: Gateway) -> None:
    line = start_failure(kafka, gateway, gateway_env(gateway, cert=False))
    assert line.startswith(f"collector: schema registry {gateway.url}: POST "), line
    assert "answered 400 No required SSL certificate was sent" in line, line
    assert "kafka.schema_registry_cert" in line, line
    assert gateway.token not in line


def test_a_wrong_token_stops_at_start_in_one_line(kafka: KafkaBroker, gateway: Gateway) -> None:
    wrong = "not-" + gateway.token
    line = start_failure(kafka, gateway, gateway_env(gateway, token=wrong))
    assert line.startswith(f"collector: schema registry {gateway.url}: POST "), line
    assert "answered 401 gateway: bearer token missing or refused" in line, line
    assert line.endswith("; check kafka.schema_registry_token"), line
    assert wrong not in line and gateway.token not in line
