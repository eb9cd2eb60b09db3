"""The Kafka adapter: the service around :class:`~streamrec.pipeline.Pipeline`, and its tools.

======================  ============================================================
``service``             :class:`KafkaService`: consume, process, publish, commit
``fetcher``             micro-batches, bounded read-ahead, pause/poll while a batch is slow
``batch``               one micro-batch of consumed messages
``messages``            messages -> events; bad ones -> dead letters (headers, cut to fit)
``dead_letter_rate``    the dead-lettered share per partition, and its alarm
``offsets``             commit, read back and rewind consumed offsets
``health``              what /healthz and /readyz answer; the consumer-lag gauge
``client_logs``         librdkafka's log lines, repeats collapsed
``stats``               the run's counters and its periodic progress line
``changelog``           user windows follow partitions through a compacted topic
``publisher``           produce with delivery proof; transactions under exactly-once
``items``               item text from a compacted items topic
``clients``             librdkafka configs (pass-through + enforced keys)
``security``            secrets from env/files; refused logins and missing ACLs, told apart
``topics``              the topics the service needs, checked or created
``produce``/``tail``    ``streamrec produce`` and ``streamrec tail``
``commands``            the CLI commands
======================  ============================================================

Delivery guarantees are documented in :mod:`streamrec.kafka.service`. ``confluent_kafka`` is
imported only inside this package.
"""

from streamrec.kafka.clients import KafkaServiceError
from streamrec.kafka.service import KafkaService
from streamrec.kafka.stats import ServiceStats

__all__ = ["KafkaService", "KafkaServiceError", "ServiceStats"]
