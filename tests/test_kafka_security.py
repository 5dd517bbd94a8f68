"""SASL and TLS against the real broker's SASL_SSL listener (certificates made
by the test set-up), and the rule that a password never reaches a log line.

The settings reach librdkafka the way a user gives them: --kafka-option
flags, the config file's [kafka.options] table, COLLECTOR_KAFKA_OPTION.
"""

from __future__ import annotations

import subprocess

import pytest
from confluent_kafka.admin import (
    AclBinding,
    AclOperation,
    AclPermissionType,
    AdminClient,
    ResourcePatternType,
    ResourceType,
)

from tests.helpers import COLLECTOR, CollectorProcess, stat_value, wait_for
from tests.kafka_fixtures import Burst, new_topic, no_duplicates, read_topic
from tests.support.kafka_broker import SASL_PASSWORD, SASL_USERNAME, KafkaBroker
from tests.test_kafka_delivery import decode_single_object

pytestmark = pytest.mark.kafka

NO_SCAN = {"COLLECTOR_ENRICH_PROCFS_EVENTS": "false"}


def sasl_flags(broker: KafkaBroker, mechanism: str, password: str = SASL_PASSWORD,
               ca: str | None = None) -> list[str]:
    conf = broker.client_config(mechanism)
    conf["sasl.password"] = password
    if ca is not None:
        conf["ssl.ca.location"] = ca
    out = ["--kafka-bootstrap", conf.pop("bootstrap.servers")]
    for key, value in conf.items():
        out += ["--kafka-option", f"{key}={value}"]
    return out


def run_sasl(broker: KafkaBroker, topic: str, *flags: str,
             env: dict[str, str] | None = None) -> CollectorProcess:
    return CollectorProcess("--sink", "kafka", "--kafka-topic", topic,
                            "--kafka-format", "avro-single-object", *flags,
                            env={**NO_SCAN, **(env or {})}).wait_attached()


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"])
def test_sasl_ssl_delivers_and_never_prints_the_password(kafka: KafkaBroker, mechanism: str) -> None:
    topic = new_topic("sasl")
    burst = Burst()
    # Debug logging on, librdkafka's security and config traces included: the
    # password must be absent from the most talkative output there is.
    debug = {"COLLECTOR_DEBUG": "1"}
    with run_sasl(kafka, topic, *sasl_flags(kafka, mechanism), "--kafka-option",
                  "debug=security,broker,conf", env=debug) as col:
        burst.spawn(20)
        assert col.stop() == 0, col.stderr
    line = col.stats_line()
    assert stat_value(line, "acked", "kafka") == stat_value(line, "queued", "kafka") > 0
    assert any("librdkafka:" in s for s in col.stderr_lines)  # the traces were on
    assert SASL_PASSWORD not in col.stderr
    msgs = read_topic(kafka.sasl_bootstrap, topic, options=_reader(kafka, mechanism),
                      until=lambda m: burst.complete([x.record for x in m]),
                      decode=decode_single_object)
    records = [m.record for m in msgs]
    burst.assert_exactly_once(records)
    assert no_duplicates(records) == []


def _reader(broker: KafkaBroker, mechanism: str) -> dict[str, str]:
    conf = broker.client_config(mechanism)
    conf.pop("bootstrap.servers")
    return conf


def test_wrong_password_is_one_clear_line_and_events_wait(kafka: KafkaBroker) -> None:
    wrong = "wrong-" + SASL_PASSWORD
    with run_sasl(kafka, new_topic("badauth"), *sasl_flags(kafka, "SCRAM-SHA-256", wrong)) as col:
        Burst().spawn(3)
        wait_for(lambda: "authentication failed" in col.stderr, timeout=30)
        col.stop(timeout=120)
    auth = [s for s in col.stderr_lines if "authentication failed" in s]
    assert len(auth) == 1, auth  # said once, not once per retry
    assert auth[0].startswith("collector: WARNING kafka: authentication failed: ")
    assert auth[0].endswith("check sasl.mechanism, sasl.username and sasl.password in "
                            "kafka.options")
    assert wrong not in col.stderr and SASL_PASSWORD not in col.stderr
    assert not [s for s in col.stderr_lines if "unreachable" in s]  # refused, not down
    # nothing was delivered and the stop says so, counted: not a clean exit
    assert col.returncode == 1
    line = col.stats_line()
    queued = stat_value(line, "queued", "kafka")
    assert queued >= 6 and stat_value(line, "written", "kafka") == 0
    assert f"dropped=shutdown_timeout:{queued} " in line
    assert col.stderr_lines[-1] == f"collector: {queued} events were not delivered (see the stats line)"


def test_untrusted_certificate_is_one_clear_line(kafka: KafkaBroker, tmp_path: object) -> None:
    # A CA that did not sign the broker's certificate: verification must fail.
    other_ca = f"{tmp_path}/other-ca.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=not-the-broker-ca", "-keyout", f"{tmp_path}/k.pem",
                    "-out", other_ca], check=True, capture_output=True)
    # No event needs to reach the sink for the refusal to be reported (the sink probes
    # the broker at start): here every event is filtered out.
    deny_all = f"{tmp_path}/deny-all.toml"
    with open(deny_all, "w") as f:
        f.write('[[filter.deny]]\nevent_type = "process_exec"\n'
                '[[filter.deny]]\nevent_type = "process_exit"\n')
    with run_sasl(kafka, new_topic("badtls"), "--config", deny_all,
                  *sasl_flags(kafka, "PLAIN", ca=other_ca)) as col:
        wait_for(lambda: "TLS failed" in col.stderr, timeout=30)
        col.stop(timeout=120)
    tls = [s for s in col.stderr_lines if "TLS failed" in s]
    assert len(tls) == 1 and "certificate verify failed" in tls[0], tls
    assert tls[0].endswith("check ssl.ca.location and the broker's certificate")
    assert SASL_PASSWORD not in col.stderr
    assert stat_value(col.stats_line(), "queued", "kafka") == 0


def test_config_file_and_environment_carry_the_settings(kafka: KafkaBroker, tmp_path: object) -> None:
    conf = kafka.client_config("SCRAM-SHA-512")
    cfg = f"{tmp_path}/collector.toml"
    with open(cfg, "w") as f:
        f.write(f'sinks = ["kafka"]\n[kafka]\nbootstrap = "{conf["bootstrap.servers"]}"\n'
                f'topic = "{new_topic("cfg")}"\n[kafka.options]\n')
        for key in ("security.protocol", "sasl.mechanism", "sasl.username", "ssl.ca.location"):
            f.write(f'"{key}" = "{conf[key]}"\n')
    env = {"COLLECTOR_KAFKA_OPTION": f"sasl.password={SASL_PASSWORD}"}
    check = subprocess.run([COLLECTOR, "check", "--config", cfg], capture_output=True, text=True,
                           env={"PATH": "/usr/bin:/bin", **env}, timeout=120)
    assert check.returncode == 0, check.stdout + check.stderr
    assert "ok  kafka sink: " + conf["bootstrap.servers"] + " reachable" in check.stdout
    assert SASL_PASSWORD not in check.stdout + check.stderr

    bad = subprocess.run([COLLECTOR, "check", "--config", cfg], capture_output=True, text=True,
                         env={"PATH": "/usr/bin:/bin",
                              "COLLECTOR_KAFKA_OPTION": "sasl.password=nope-" + SASL_PASSWORD},
                         timeout=120)
    assert bad.returncode == 1
    fail = [s for s in bad.stdout.splitlines() if s.startswith("FAIL kafka sink")]
    assert len(fail) == 1 and "not reachable" in fail[0], bad.stdout
    assert SASL_PASSWORD not in bad.stdout + bad.stderr


def grant_write(broker: KafkaBroker, topic: str) -> None:
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})  # ANONYMOUS: a super user
    futures = admin.create_acls([
        AclBinding(ResourceType.TOPIC, topic, ResourcePatternType.LITERAL,
                   f"User:{SASL_USERNAME}", "*", op, AclPermissionType.ALLOW)
        for op in (AclOperation.WRITE, AclOperation.DESCRIBE)])
    for f in futures.values():
        f.result(timeout=30)


def test_topic_not_authorized_is_counted_and_the_other_sinks_go_on(acl_kafka: KafkaBroker) -> None:
    # The user may write to another topic (so its idempotent producer gets an id),
    # not to this one.
    topic, other = new_topic("denied"), new_topic("granted")
    acl_kafka.create_topic(topic)
    acl_kafka.create_topic(other)
    grant_write(acl_kafka, other)
    first, second = Burst(), Burst()
    with run_sasl(acl_kafka, topic, *sasl_flags(acl_kafka, "SCRAM-SHA-256"),
                  "--sink", "stdout") as col:
        first.spawn(5)
        wait_for(lambda: "not authorized" in col.stderr, timeout=30)
        second.spawn(5)  # the sink is still there, and says the same of these
        wait_for(lambda: second.complete(col.events()), timeout=30)
        assert col.stop() == 0, col.stderr
    line = col.stats_line()
    assert "FAILED" not in line
    queued = stat_value(line, "queued", "kafka")
    assert stat_value(line, "written", "kafka") == 0
    assert f"dropped=not_authorized:{queued} " in line and queued >= 20
    drops = [s for s in col.stderr_lines if "kafka: dropped" in s]
    assert drops and all(s.startswith("collector: ERROR kafka: dropped ") and s.endswith(
        f"events: not authorized to write to topic '{topic}'; grant WRITE (and "
        "IDEMPOTENT_WRITE) to the collector's principal") for s in drops), drops
    assert sum(int(s.split()[4]) for s in drops) == queued  # each drop said once, all of them
    assert SASL_PASSWORD not in col.stderr
    # stdout, the other sink, got every event
    first.assert_exactly_once(col.events())
    second.assert_exactly_once(col.events())
