"""Confluent Avro into OpenSearch through Apache Camel, a real SIEM-side consumer.

The collector's `--kafka-format avro` messages (Confluent framing: magic
byte, 4-byte schema id, Avro datum) are what Kafka Connect and Camel read
with a registry's deserializer. Here Apache Camel 4 (`camel-main`, its
Kafka and HTTP components, the YAML route deploy/siem/camel/avro-to-
opensearch.yaml) reads the topic with Apicurio's `AvroKafkaDeserializer`
2.6.13.Final, which fetches the writer's schema by the id in each message
from the same Apicurio 3.3.3 registry the collector registered it in (its
v2 API; the ccompat id is the content id), and PUTs each record, rendered as
JSON by Avro itself, into an OpenSearch index.

The Avro form of a shape is not quite its JSON form (collector.shapes.
jsonform): ECS's `@timestamp` is `timestamp` in Avro, its dates are
nanosecond longs, and null fields are present. `ingest_pipeline(shape)`
derives, from the shape's schema in schemas/, the OpenSearch ingest pipeline
that undoes exactly that; the index uses it as its default pipeline, so the
same mapping (deploy/siem/<shape>-index.json) and the same queries serve
both the JSON and the Avro path.

Jars come from Maven Central through Maven (tests/support/maven.py), once,
into the download cache (`camel-siem`, about 40 MB). The JVM is started as
`java -cp deploy/siem/camel:'libs/*' org.apache.camel.main.Main` (the route
and application.properties are on the classpath); placeholders are JVM
properties. Measured here: the route runs about 4 s after start (Camel's
boot line), about 150 MB RSS with its 128 MB heap.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any

try:
    from .maven import fetch_with_dependencies
    from .processes import stop_gracefully
except ImportError:  # run as a script
    from maven import fetch_with_dependencies  # type: ignore[no-redef,import-not-found,unused-ignore]
    from processes import stop_gracefully  # type: ignore[no-redef,import-not-found,unused-ignore]

CAMEL = "4.22.0"
APICURIO_SERDE = "2.6.13.Final"
COORDS = [f"org.apache.camel:camel-main:{CAMEL}", f"org.apache.camel:camel-kafka:{CAMEL}",
          f"org.apache.camel:camel-yaml-dsl:{CAMEL}", f"org.apache.camel:camel-http:{CAMEL}",
          f"io.apicurio:apicurio-registry-serdes-avro-serde:{APICURIO_SERDE}",
          "org.slf4j:slf4j-simple:2.0.17"]
JAVA = os.environ.get("CAMEL_JAVA", "/usr/lib/jvm/temurin-25-jdk-amd64/bin/java")
REPO = Path(__file__).resolve().parent.parent.parent
ROUTE_DIR = REPO / "deploy" / "siem" / "camel"  # the route and application.properties
READY = "Started process-events-avro-to-opensearch"

#: The ingest script: drop null fields (the JSON forms omit them), turn the
#: schema's timestamp longs into RFC 3339 strings with nanoseconds, as
#: collector.encode.timefmt writes them (ECS dates), rename fields
#: whose JSON name Avro cannot spell. Paths and units come from params.
SCRIPT = """
void dropNulls(Map m) {
  m.values().removeIf(v -> v == null);
  for (def v : m.values()) {
    if (v instanceof Map) { dropNulls((Map) v); }
    else if (v instanceof List) { for (def x : v) { if (x instanceof Map) { dropNulls((Map) x); } } }
  }
}
def parent(def root, List path) {
  def o = root;
  for (int i = 0; i < path.size() - 1 && o instanceof Map; i++) { o = o[path[i]]; }
  return o instanceof Map ? o : null;
}
DateTimeFormatter STAMP = DateTimeFormatter.ofPattern("uuuu-MM-dd'T'HH:mm:ss.SSSSSSSSS'Z'")
    .withZone(ZoneOffset.UTC);
if (params.omit_nulls) {
  for (def k : new ArrayList(ctx.keySet())) {
    if (!k.startsWith('_')) {
      def v = ctx[k];
      if (v == null) { ctx.remove(k); } else if (v instanceof Map) { dropNulls((Map) v); }
    }
  }
}
for (def t : params.timestamps) {
  def o = parent(ctx, t.path);
  String last = t.path[t.path.size() - 1];
  if (o != null && o[last] instanceof Number) {
    long ns = ((Number) o[last]).longValue() * t.ns;  // after 1970: / and % suffice
    o[last] = STAMP.format(Instant.ofEpochSecond(ns / 1000000000L, ns % 1000000000L));
  }
}
for (def r : params.renames) {
  def o = parent(ctx, r.path);
  String last = r.path[r.path.size() - 1];
  if (o != null && o.containsKey(last)) { o[r.to] = o.remove(last); }
}
"""

_NS = {"timestamp-millis": 1_000_000, "timestamp-micros": 1_000, "timestamp-nanos": 1}


def _walk(t: Any, path: list[str], named: dict[str, Any], out: dict[str, list[Any]],
          in_array: bool) -> None:
    """Collect the timestamp fields and json_name renames under `t` at `path`."""
    if isinstance(t, list):
        for branch in t:
            _walk(branch, path, named, out, in_array)
        return
    if isinstance(t, str):
        if t in named:  # a record named earlier: its fields were walked where defined
            return
        return
    kind = t.get("type")
    if kind == "record":
        named[t["name"]] = t
        for f in t["fields"]:
            sub = [*path, f["name"]]
            if "json_name" in f:
                if in_array:
                    raise ValueError(f"json_name under an array at {'.'.join(sub)}")
                out["renames"].append({"path": sub, "to": f["json_name"]})
            _walk(f["type"], sub, named, out, in_array)
    elif kind == "array":
        _walk(t["items"], path, named, out, True)
    elif t.get("logicalType") in _NS:
        out["stamps"].append((path, _NS[t["logicalType"]], in_array))


def ingest_pipeline(schema: dict[str, Any]) -> dict[str, Any]:
    """The OpenSearch ingest pipeline that turns a shape's Avro form, as Avro
    renders it in JSON, into the shape's JSON form (see the module docstring)."""
    out: dict[str, list[Any]] = {"renames": [], "stamps": []}
    _walk(schema, [], {}, out, False)
    timestamps = []
    if schema.get("json_timestamps") == "rfc3339":
        for path, ns, in_array in out["stamps"]:
            if in_array:
                raise ValueError(f"an RFC 3339 timestamp under an array at {'.'.join(path)}")
            timestamps.append({"path": path, "ns": ns})
    # renames are applied innermost first, after the timestamps (which use Avro names)
    renames = sorted(out["renames"], key=lambda r: -len(r["path"]))
    return {
        "description": f"{schema['name']}: Avro form -> JSON form (derived from its schema)",
        "processors": [{"script": {"lang": "painless", "source": SCRIPT, "params": {
            "omit_nulls": schema.get("json_nulls") == "omit",
            "timestamps": timestamps, "renames": renames}}}],
    }


class CamelError(RuntimeError):
    """Camel did not start its route (the end of its log is in the message)."""


class CamelAvroConsumer:
    """One Camel JVM running the Avro-to-OpenSearch route for one topic and index."""

    def __init__(self, directory: Path, *, topic: str, bootstrap: str, registry: str,
                 user: str, password: str, opensearch: str, index: str,
                 group: str | None = None) -> None:
        """`registry`: the registry's Apicurio v2 API base URL (…/apis/registry/v2);
        `opensearch`: host:port of the node."""
        self.directory = Path(directory)
        self.props = {"siem.topic": topic, "siem.bootstrap": bootstrap,
                      "siem.group": group or f"camel-{topic}", "siem.registry": registry,
                      "siem.registry.user": user, "siem.registry.password": password,
                      "siem.opensearch": opensearch, "siem.index": index}
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = self.directory / "camel.log"

    def start(self, timeout: float = 120.0) -> CamelAvroConsumer:
        libs = fetch_with_dependencies(COORDS, "camel-siem")
        self.directory.mkdir(parents=True, exist_ok=True)
        args = [JAVA, "-Xms32m", "-Xmx128m", "-XX:+UseSerialGC",
                "-Dorg.slf4j.simpleLogger.defaultLogLevel=info",
                *(f"-D{k}={v}" for k, v in self.props.items()),
                "-cp", f"{ROUTE_DIR}:{libs}/*", "org.apache.camel.main.Main"]
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(args, cwd=self.directory, stdin=subprocess.DEVNULL,
                                     stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        deadline = time.monotonic() + timeout
        while READY not in self.log():
            if self.proc.poll() is not None:
                raise CamelError(f"camel exited with {self.proc.returncode}: {self.log()[-3000:]}")
            if time.monotonic() > deadline:
                self.stop()
                raise CamelError(f"camel's route not started in {timeout}s: {self.log()[-3000:]}")
            time.sleep(0.3)
        return self

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def stop(self) -> None:
        if self.proc is None:
            return
        stop_gracefully(self.proc, 30)
        self.proc = None

    def __enter__(self) -> CamelAvroConsumer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


if __name__ == "__main__":  # print a shape's pipeline: python tests/support/camel_siem.py ecs
    import sys

    sys.path.insert(0, str(REPO))
    from collector import shapes

    print(json.dumps(ingest_pipeline(shapes.get(sys.argv[1]).raw_schema), indent=2))
