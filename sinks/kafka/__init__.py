"""The Kafka sink, in layers (the spirit of Vector's src/sinks/kafka):

    options.py      its options, producer defaults, reserved and secret settings
    message.py      event → Message (value framing, key = exec_id, headers)
    delivery.py     delivery reports → delivered / re-send / drop(reason): pure
    producer.py     one producer, its background errors, produce-and-wait rounds
    producer_stats.py  librdkafka's own re-sends and leader changes (stats_cb)
    direct.py       buffer = memory: write_batch is one round
    buffered.py     buffer = disk: durable append + the sender thread
    disk_buffer.py  the SQLite FIFO the sender reads
    check.py        `collector check`, and the broker probe at start
    consume.py      `collector consume`: the topic as a SIEM sees it
    sink.py         KafkaSink: the collector.export.Sink the core drives

Imports run one way: sink → direct/buffered → producer → delivery/message
→ options → producer_stats; nothing here is imported by the core (only
found, by its entry point). Retries, batching, backpressure and counting
are the core's.
"""

from sinks.kafka.sink import KafkaSink

__all__ = ["KafkaSink"]
