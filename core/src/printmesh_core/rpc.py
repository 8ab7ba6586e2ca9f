"""Calling commands: publish a request and wait for the response with the same id.

With MQTT 5 the answer comes back on our own reply subtree,
``<root>/reply/<requester>/<node>/<component>``: the only response topics a command server
honours, and (under the generated ACL) the only ones nobody else can read. With MQTT 3.1.1
it comes on the target's ``res/<command>`` topic, shared with every other requester.
"""

from __future__ import annotations

import json
import threading
import uuid
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

from pydantic import ValidationError

from printmesh_core.models.envelope import CommandResponse
from printmesh_core.mqtt import Message, MqttRuntime
from printmesh_core.topics import ComponentTopics, join, reply_filter, reply_topic, requester_id


class RequestTimeout(TimeoutError):
    pass


class Requester:
    """Correlates responses by ``id``; works with any broker and with MQTT 3.1.1 too.

    ``requester`` names the reply subtree; by default the broker account (whose subtree the
    ACL lets it read), else a random id.
    """

    def __init__(self, runtime: MqttRuntime, requester: str | None = None) -> None:
        self.runtime = runtime
        self.v5 = runtime.config.protocol == "5"
        self.requester = requester or requester_id(runtime.config.username, "rpc", uuid.uuid4().hex[:12])
        self._pending: dict[str, Future[CommandResponse]] = {}
        self._watched: set[str] = set()
        self._lock = threading.Lock()

    def watch(self, target: ComponentTopics, command: str, timeout: float = 5.0) -> bool:
        """Subscribe to where the answers come, ahead of the first call (waits for the broker's ack)."""
        topic = reply_filter(self.requester) if self.v5 else target.res(command)
        with self._lock:
            if topic in self._watched:  # the common case: one set lookup per call
                return True
            self._watched.add(topic)
        return self.runtime.subscribe_relative(topic, self._on_response, qos=1, wait=timeout)

    def call(
        self, target: ComponentTopics, command: str, body: dict[str, Any] | None = None, timeout: float = 10.0
    ) -> CommandResponse:
        self.watch(target, command, timeout)
        request = dict(body or {})
        rid = str(request.setdefault("id", uuid.uuid4().hex))
        future: Future[CommandResponse] = Future()
        with self._lock:
            self._pending[rid] = future
        try:
            if self.v5:
                root = self.runtime.root
                reply = join(root, reply_topic(self.requester, target))
                self.runtime.publish_absolute(
                    join(root, target.cmd(command)), json.dumps(request), qos=1, response_topic=reply
                )
            else:
                self.runtime.publish(target.cmd(command), json.dumps(request), qos=1, retain=False)
            return future.result(timeout)
        except FutureTimeout:
            raise RequestTimeout(f"no response to {command} (id {rid}) within {timeout}s") from None
        finally:
            with self._lock:
                self._pending.pop(rid, None)

    def _on_response(self, message: Message) -> None:
        try:
            response = CommandResponse.model_validate_json(message.payload)
        except ValidationError:
            return
        with self._lock:
            future = self._pending.get(response.id or "")
        if future is not None and not future.done():
            future.set_result(response)
