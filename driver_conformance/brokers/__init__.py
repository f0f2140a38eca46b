"""Real brokers the kit's lanes run against: reachability, cleanup, and process management.

:mod:`~driver_conformance.brokers.rabbit` finds and deletes what a run
declared on a shared RabbitMQ; :mod:`~driver_conformance.brokers.tansu`
starts and stops a private Kafka-protocol broker for one run.
"""
