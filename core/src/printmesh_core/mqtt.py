"""The one module that imports paho-mqtt: the session.

It owns the connection's whole life: presence (retained status plus last will), reconnecting with backoff (to the
next broker of ``mqtt.hosts``: ``failover`` decides which and when), restoring subscriptions *inside* the connect
callback so they survive a broker restart or a move, a bounded offline queue, and a publish API that adds the topic
root and refuses wildcards. Its paho-free parts: ``messages``, ``routing``, ``failover``, ``outbox``.
"""

from __future__ import annotations

import functools
import logging
import socket
import ssl
import threading
from collections.abc import Callable
from typing import Any, Literal

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from printmesh_core.bounded import Evictions
from printmesh_core.config import MqttConfig
from printmesh_core.failover import Failover, Outcome
from printmesh_core.inbound import Health
from printmesh_core.messages import Handler, Message, PayloadLike, Presence, encode
from printmesh_core.models.status import Status
from printmesh_core.outbox import Outbox, Outgoing, take_unacked
from printmesh_core.routing import Subscriptions, matches
from printmesh_core.topics import check_publish_topic, join

log = logging.getLogger("printmesh.mqtt")

# Re-exported: importers use ``printmesh_core.mqtt`` as the runtime's one public address.
__all__ = ["Handler", "Message", "MqttRuntime", "PayloadLike", "Presence", "matches"]


@functools.lru_cache(maxsize=2048)
def _absolute(root: str, relative: str) -> str:
    return check_publish_topic(join(root, relative))


def _call_each(hooks: list[Callable[[], None]], what: str) -> None:
    for hook in list(hooks):
        try:
            hook()
        except Exception:
            log.exception("%s hook failed", what)


class MqttRuntime:
    def __init__(self, config: MqttConfig, root: str, client_id: str, presence: Presence | None = None) -> None:
        self.config = config
        self.root = root
        self.presence = presence
        self._lock = threading.RLock()
        self._connected = False
        self._connected_event = threading.Event()
        self._subs = Subscriptions()
        self._outbox = Outbox(config.queue_size)
        self.connect_count = 0
        self._connect_hooks: list[Callable[[], None]] = []
        self._disconnect_hooks: list[Callable[[], None]] = []
        self._suback_waiters: dict[int, threading.Event] = {}
        self._stopping = False
        self._failover = Failover(config.brokers, config.reconnect)
        self.health = Health(on_change=self._counts_changed)  # refused and failed messages, counted
        self.evictions = Evictions()  # bounded per-sender tables of this process; in the status
        self.flushed_on_connect: frozenset[str] = frozenset()  # topics the last connect sent from the queue
        self._v5 = config.protocol == "5"
        self._connect_kwargs: dict[str, Any] = {"clean_start": True} if self._v5 else {}
        self._client = self._make_client(client_id)

    # ------------------------------------------------------------------ setup
    def _make_client(self, client_id: str) -> paho.Client:
        cfg = self.config
        version, clean = (paho.MQTTv5, None) if self._v5 else (paho.MQTTv311, True)  # MQTT 5: clean_start, at connect
        client = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=version, clean_session=clean)
        if cfg.username:
            client.username_pw_set(cfg.username, cfg.password.get_secret_value() if cfg.password else None)
        if cfg.tls.enabled:
            ca, cert, key, password = cfg.tls.client_files()
            client.tls_set(ca, cert, key, cert_reqs=ssl.CERT_REQUIRED, keyfile_password=password)
            client.tls_insecure_set(cfg.tls.insecure)
        client.reconnect_delay_set(min_delay=cfg.reconnect.min_delay, max_delay=cfg.reconnect.max_delay)
        if self.presence is not None:
            will = self._status("offline", "lost")
            client.will_set(self._abs(self.presence.topic), will.to_json(), qos=1, retain=True)
        client.on_socket_open = self._on_socket_open
        client.on_connect = self._on_connect
        client.on_connect_fail = self._on_connect_fail
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.on_subscribe = self._on_subscribe
        return client

    def _status(self, state: Literal["online", "offline"], reason: str | None = None) -> Status:
        assert self.presence is not None
        h, dropped = self.health, self._outbox.dropped_total
        return self.presence.status(state, reason, dropped, h.rejected, h.failed, self.evictions.total)

    def _counts_changed(self) -> None:  # new refused or failed counts (``Health`` bounds the rate)
        if self.presence is not None and self._connected and not self._stopping:
            self.publish(self.presence.topic, self._status("online"), qos=1, retain=True)

    def _abs(self, relative: str) -> str:
        return _absolute(self.root, relative)

    # -------------------------------------------------------------- lifecycle
    def start(self) -> None:
        """Connect in the background (to the first broker); paho's loop thread reconnects, ``_move_on`` says where."""
        first = self._failover.current
        self._client.connect_async(first.host, first.port, self.config.keepalive, **self._connect_kwargs)
        self._client.loop_start()

    def wait_connected(self, timeout: float) -> bool:
        return self._connected_event.wait(timeout)

    @property
    def connected(self) -> bool:
        return self._connected

    @property
    def broker(self) -> str:  # the one in use or being tried, 'host:port'
        return str(self._failover.current)

    def stop(self, timeout: float = 3.0) -> None:
        """Publish a clean ``offline`` (so the will is not needed) and disconnect."""
        with self._lock:  # after this, no callback points paho at another broker (see ``_move_on``)
            self._stopping = True
        if self._connected and self.presence is not None:
            bye = self._status("offline", "shutdown").to_json()
            info = self._client.publish(self._abs(self.presence.topic), bye, qos=1, retain=True)
            try:
                info.wait_for_publish(timeout)
            except (RuntimeError, ValueError) as exc:
                log.warning("could not publish offline status: %s", exc)
        self._client.disconnect()
        self._client.loop_stop()

    def on_disconnected(self, hook: Callable[[], None]) -> None:
        self._disconnect_hooks.append(hook)  # when an established connection is lost (not a failed attempt)

    def on_connected(self, hook: Callable[[], None]) -> None:
        self._connect_hooks.append(hook)  # inside every connect callback (after status and subscriptions)

    # -------------------------------------------------------------- callbacks
    def _on_socket_open(self, client: paho.Client, userdata: Any, sock: Any) -> None:
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError as exc:  # e.g. a unix socket
            log.debug("TCP_NODELAY not set: %s", exc)

    def _on_connect(self, client: paho.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        if reason.is_failure:
            log.warning("broker %s refused the connection: %s", self._failover.current, reason)
            return
        with self._lock:
            stale = take_unacked(client)  # the lost connection's unacknowledged sends; before any of this one's
            self._connected = True
            self._failover.connected()
            self.connect_count += 1
            # subscriptions before "online": a broker takes one connection's packets in order, so commands are live
            if self._subs:
                client.subscribe([(f, self._options(qos)) for f, qos in self._subs.filters()])
            if self.presence is not None:
                client.publish(status := self._abs(self.presence.topic), self._status("online").to_json(), 1, True)
                stale = [out for out in stale if out.topic != status]
            self._outbox.put_earlier(stale)
            self._flush_queue()
        log.info("connected to %s (connection #%d)", self._failover.current, self.connect_count)
        _call_each(self._connect_hooks, "connect")
        self._connected_event.set()

    def _on_connect_fail(self, client: paho.Client, userdata: Any) -> None:
        self._move_on("failed")

    def _move_on(self, outcome: Outcome) -> None:
        """Point paho's next reconnect (it runs after this callback) at the broker ``failover`` picks, and its wait."""
        with self._lock:
            if self._stopping:
                return
            move = self._failover.after(outcome)
            self._client.reconnect_delay_set(move.delay, move.delay)
            self._client.connect_async(
                move.broker.host, move.broker.port, self.config.keepalive, **self._connect_kwargs
            )
        if move.warning:  # a failover, or a broker that cannot be reached (not a hang), at a bounded rate
            log.warning(move.warning)

    def _on_disconnect(self, client: paho.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        with self._lock:
            was = self._connected
            self._connected = False
            self._connected_event.clear()
        if was and not self._stopping:
            log.warning("disconnected from broker %s (%s); reconnecting with backoff", self._failover.current, reason)
        self._move_on("lost" if was else "failed")
        if was:
            _call_each(self._disconnect_hooks, "disconnect")

    def _on_message(self, client: paho.Client, userdata: Any, msg: paho.MQTTMessage) -> None:
        props = getattr(msg, "properties", None)  # MQTT 5 only; getattr of None gives the default
        response, correlation = getattr(props, "ResponseTopic", None), getattr(props, "CorrelationData", None)
        message = Message(msg.topic, bytes(msg.payload), msg.qos, bool(msg.retain), response, correlation)
        with self._lock:
            handlers = self._subs.handlers_for(msg.topic)
        for handler in handlers:  # each wrapped by ``Health.handle``: it counts, logs and survives
            handler(message)

    def _on_subscribe(self, client: paho.Client, userdata: Any, mid: int, reasons: Any, props: Any) -> None:
        if refused := [str(r) for r in reasons if r.is_failure]:  # an ACL; NATS: a QoS 1 one while it elects leaders
            log.error("broker %s refused a subscription: %s", self._failover.current, ", ".join(refused))
        with self._lock:
            waiter = self._suback_waiters.pop(mid, None)
        if waiter is not None:
            waiter.set()

    # ---------------------------------------------------------------- publish
    def publish(self, topic: str, payload: PayloadLike, *, qos: int = 0, retain: bool = False) -> None:
        """Publish to ``topic`` under the root; refuses wildcards and empty levels."""
        self.publish_absolute(self._abs(topic), payload, qos=qos, retain=retain)

    def publish_absolute(
        self, topic: str, payload: PayloadLike, *, qos: int = 0, retain: bool = False,
        correlation_data: bytes | None = None, response_topic: str | None = None,
    ) -> None:  # fmt: skip
        """Publish outside the root: discovery configs and MQTT 5 response topics."""
        out = Outgoing(check_publish_topic(topic), encode(payload), qos, retain, correlation_data, response_topic)
        with self._lock:
            if not self._connected:
                self._outbox.put(out)
                return
            info = self._send(out)
            if info.rc == paho.MQTT_ERR_NO_CONN and qos == 0:
                self._outbox.put(out)

    def _send(self, out: Outgoing) -> paho.MQTTMessageInfo:
        properties = self._properties(out.correlation_data, out.response_topic)
        return self._client.publish(out.topic, out.payload, qos=out.qos, retain=out.retain, properties=properties)

    def _properties(self, correlation_data: bytes | None, response_topic: str | None) -> Properties | None:
        if not self._v5 or (correlation_data is None and response_topic is None):
            return None
        props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
        if correlation_data is not None:
            props.CorrelationData = correlation_data
        if response_topic is not None:
            props.ResponseTopic = check_publish_topic(response_topic)
        return props

    def _flush_queue(self) -> None:
        pending, report = self._outbox.drain()
        if report:
            log.warning(report)
        for out in pending:
            self._send(out)
        self.flushed_on_connect = frozenset(out.topic for out in pending)

    @property
    def queued(self) -> int:
        with self._lock:
            return len(self._outbox)

    @property
    def dropped_total(self) -> int:
        return self._outbox.dropped_total

    # -------------------------------------------------------------- subscribe
    def subscribe(self, topic_filter: str, handler: Handler, *, qos: int = 1, wait: float | None = None) -> bool:
        """An absolute filter (wildcards allowed), restored on every connect; ``wait``: until acked, or False."""
        waiter = threading.Event()
        guarded = functools.partial(self.health.handle, topic_filter, handler)
        with self._lock:
            effective_qos = self._subs.add(topic_filter, guarded, qos)
            if not self._connected:
                return wait is None
            _, mid = self._client.subscribe((topic_filter, self._options(effective_qos)))
            if mid is not None and wait is not None:  # only a waiting caller needs its SUBACK seen
                self._suback_waiters[mid] = waiter
        return True if wait is None else waiter.wait(wait)

    def _options(self, qos: int) -> Any:
        """At most ``mqtt.max_subscribe_qos``; MQTT 5: keep the publisher's retain flag (a retained command is seen)."""
        qos = min(qos, self.config.max_subscribe_qos)
        return SubscribeOptions(qos=qos, retainAsPublished=True) if self._v5 else qos

    def subscribe_relative(
        self, topic_filter: str, handler: Handler, *, qos: int = 1, wait: float | None = None
    ) -> bool:
        return self.subscribe(join(self.root, topic_filter), handler, qos=qos, wait=wait)

    def unsubscribe(self, topic_filter: str) -> None:
        """Drop an absolute filter and its handlers: no longer delivered, nor restored on connect."""
        with self._lock:
            if self._subs.remove(topic_filter) and self._connected:
                self._client.unsubscribe(topic_filter)
