"""The Kafka adapter: the service around :class:`~streamrec.pipeline.Pipeline`, and its tools.

===================  ============================================================
``service``          :class:`KafkaService`: consume, process, publish, commit
``fetcher``          micro-batches, bounded read-ahead, pause/poll while a batch is slow
``batch``            one micro-batch of consumed messages
``messages``         messages -> events; bad ones -> dead letters (headers)
``changelog``        user windows follow partitions through a compacted topic
``publisher``        produce with delivery proof; transactions under exactly-once
``items``            item text from a compacted items topic
``clients``          librdkafka configs (pass-through + enforced keys)
``topics``           the topics the service needs, checked or created
``produce``/``tail``  ``streamrec produce`` and ``streamrec tail``
``commands``         the CLI commands
===================  ============================================================

Delivery guarantees are documented in :mod:`streamrec.kafka.service`. ``confluent_kafka`` is
imported only inside this package.
"""

from streamrec.kafka.clients import KafkaServiceError
from streamrec.kafka.service import KafkaService
from streamrec.kafka.stats import ServiceStats

__all__ = ["KafkaService", "KafkaServiceError", "ServiceStats"]
