"""Kafka security: secrets kept out of the settings, and refused logins or missing ACLs told apart.

**Secrets.** A ``kafka.config`` value written ``${env:NAME}`` is the environment variable NAME,
``${file:PATH}`` the content of the file PATH (one trailing newline dropped), read when a client
is made (:func:`resolve_secrets`), so a password is in neither the YAML file nor the settings
object, and never in a log line: a missing variable or file is a
:class:`~streamrec.errors.ConfigError` naming the key and the variable or file, not the value.
librdkafka redacts ``sasl.password`` and the other sensitive properties in its own logs.

**Failures.** librdkafka reports a refused login (``_AUTHENTICATION``, ``SASL_AUTHENTICATION_FAILED``)
and a missing ACL (``TOPIC_``, ``GROUP_``, ``TRANSACTIONAL_ID_``, ``CLUSTER_AUTHORIZATION_FAILED``)
through error callbacks, consumed messages, delivery reports and exceptions. It keeps retrying a
refused login as if the broker were down, so the service would wait out
``kafka.broker_timeout_seconds``; every one of those paths asks :func:`auth_failure` instead,
which makes a :class:`~streamrec.errors.KafkaAuthError` that says what was refused (``streamrec
run`` exits 5). Neither is retried: a restart does not grant an ACL or fix a password.

>>> str(auth_failure(KafkaError(KafkaError.TOPIC_AUTHORIZATION_FAILED), "write to topic 'recs'")).split(";")[0]
"not authorized to write to topic 'recs' (Broker: Topic authorization failed)"
>>> auth_failure(KafkaError(KafkaError._TRANSPORT), "anything") is None
True
>>> resolve_secrets({"sasl.password": "${env:NO_SUCH_VARIABLE_HERE}"})
Traceback (most recent call last):
...
streamrec.errors.ConfigError: kafka.config sasl.password: environment variable NO_SUCH_VARIABLE_HERE is not set
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from confluent_kafka import KafkaError, KafkaException

from streamrec.errors import ConfigError, KafkaAuthError

_REFERENCE = re.compile(r"^\$\{(env|file):(.+)\}$", re.IGNORECASE)

AUTHENTICATION = frozenset({KafkaError._AUTHENTICATION, KafkaError.SASL_AUTHENTICATION_FAILED})
AUTHORIZATION = frozenset({KafkaError.TOPIC_AUTHORIZATION_FAILED, KafkaError.GROUP_AUTHORIZATION_FAILED,
                           KafkaError.TRANSACTIONAL_ID_AUTHORIZATION_FAILED,
                           KafkaError.CLUSTER_AUTHORIZATION_FAILED})


def resolve_secrets(config: Mapping[str, str]) -> dict[str, str]:
    """``config`` with each ``${env:NAME}`` / ``${file:PATH}`` value replaced by what it names."""
    resolved: dict[str, str] = {}
    for key, value in config.items():
        match = _REFERENCE.match(value) if isinstance(value, str) else None
        if match is None:
            resolved[key] = value
            continue
        kind, name = match.group(1).lower(), match.group(2)
        if kind == "env":
            if name not in os.environ:
                raise ConfigError(f"kafka.config {key}: environment variable {name} is not set")
            resolved[key] = os.environ[name]
            continue
        try:
            resolved[key] = Path(name).read_text().removesuffix("\n")
        except OSError as exc:
            raise ConfigError(f"kafka.config {key}: cannot read {name!r} ({exc.strerror})") from None
    return resolved


def auth_failure(error: KafkaError | None, doing: str, group: str | None = None) -> KafkaAuthError | None:
    """A :class:`KafkaAuthError` for ``error`` if it is a refused login or a missing ACL met while
    trying to ``doing`` (e.g. "write to topic 'recs'"; a group's refusal names ``group``), else None."""
    if error is None:
        return None
    code = error.code()
    if code == KafkaError.GROUP_AUTHORIZATION_FAILED:
        doing = f"use consumer group {group!r}" if group else "use the consumer group (kafka.group, or a reader's)"
    if code in AUTHENTICATION:
        return KafkaAuthError(f"authentication failed ({error.str()}); check sasl.username and sasl.password "
                              "in kafka.config")
    if code in AUTHORIZATION:
        return KafkaAuthError(f"not authorized to {doing} ({error.str()}); grant the principal an ACL for it "
                              "(README: Security)")
    return None


def raise_on_auth(error: KafkaError | None, doing: str, group: str | None = None) -> None:
    """Raise :func:`auth_failure`'s error, if there is one."""
    failure = auth_failure(error, doing, group)
    if failure is not None:
        raise failure


def raise_on_auth_exception(exc: BaseException, doing: str, group: str | None = None) -> None:
    """:func:`raise_on_auth` for a :class:`KafkaException` (anything else is left alone)."""
    if isinstance(exc, KafkaException) and exc.args and isinstance(exc.args[0], KafkaError):
        failure = auth_failure(exc.args[0], doing, group)
        if failure is not None:
            raise failure from exc


class AuthWatch:
    """An ``error_cb`` that keeps the first refused login, for clients whose blocking calls serve no
    callbacks (the admin client): poll the client, then :meth:`check`.

    >>> watch = AuthWatch()
    >>> watch(KafkaError(KafkaError._ALL_BROKERS_DOWN)); watch.check()
    >>> watch(KafkaError(KafkaError._AUTHENTICATION, "SASL authentication error")); watch.check()
    Traceback (most recent call last):
    ...
    streamrec.errors.KafkaAuthError: authentication failed (SASL authentication error); check sasl.username ...
    """

    def __init__(self) -> None:
        self._failure: KafkaAuthError | None = None
        self._lock = threading.Lock()

    def __call__(self, error: KafkaError) -> None:
        failure = auth_failure(error, "connect")
        with self._lock:
            if failure is not None and self._failure is None:
                self._failure = failure

    def check(self, client: Any = None) -> None:
        """Serve ``client``'s callbacks (if given), then raise the refused login, if any."""
        if client is not None:
            client.poll(0)
        with self._lock:
            failure = self._failure
        if failure is not None:
            raise failure
