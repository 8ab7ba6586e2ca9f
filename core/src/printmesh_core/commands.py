"""Serving commands: one dispatch table per component, the envelope, and repeats (``repeats.py``).

A request arrives on ``<node>/<component>/cmd/<name>`` and its answer goes to
``<node>/<component>/res/<name>``, or to the MQTT 5 response topic with the correlation
data echoed. A response topic is honoured only inside the reply namespace
(``<root>/reply/<requester>/<node>/<component>``, see topics.py): any other could make this
component publish on someone else's command topic (a camera's ``press``), so such a request
is refused, unrun, on ``res/<name>``. Whatever arrives, the process answers (or logs) and
carries on: a request over ``inbound.JSON_LIMIT`` bytes, nested deeper than ``inbound.MAX_DEPTH``
or holding ``NaN`` is answered ``invalid_request`` before any parser sees it (with its id
when ``inbound.recover_id`` finds one), and the model is validated in strict mode. A flood of
valid requests cannot queue without bound behind slow handlers: past ``QUEUED_PER_WORKER`` per
worker thread, a request is answered ``busy`` at once.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any

from pydantic import BaseModel, ValidationError

from printmesh_core.inbound import Rejected, recover_id, screen
from printmesh_core.models.envelope import ID_MAX, CommandRequest, CommandResponse, ErrorInfo
from printmesh_core.mqtt import Message, MqttRuntime
from printmesh_core.repeats import WAITING, Dedupe, Running
from printmesh_core.topics import REPLY, ComponentTopics, TopicError, Topics, is_reply_topic

log = logging.getLogger("printmesh.commands")

HandlerResult = Mapping[str, Any] | BaseModel | None
Reply = Callable[[CommandResponse], None]
QUEUED_PER_WORKER = 16  # requests queued or running per worker before the next is answered 'busy'


class CommandFailed(Exception):
    """Raised by a handler to answer with a specific error code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Command:
    name: str
    request: type[CommandRequest]
    handler: Callable[..., Any]  # (request) -> HandlerResult, or (request, message, reply) if deferred
    inline: bool = False  # cheap handlers answer from the network thread, skipping a thread hop
    description: str = ""
    # Deferred: handler(request, message, reply) is called on the network thread, must only
    # queue the work, and calls reply(response) later from its own thread (e.g. a camera's).
    deferred: bool = False
    # A repeat is answered with the first answer, on the network thread; this runs first, for a
    # command whose effect was also a message of its own (a capture's image): it sends it again.
    # It returns another answer for this repeat when it cannot (an error saying why), else None.
    on_repeat: Callable[[CommandRequest, CommandResponse, Message], CommandResponse | None] | None = None


def error(
    request_id: str | None, code: str, message: str, details: list[dict[str, Any]] | None = None
) -> CommandResponse:
    return CommandResponse(id=request_id, ok=False, error=ErrorInfo(code=code, message=message, details=details))


def _sniff_id(doc: Any) -> str | None:
    rid = doc.get("id") if isinstance(doc, dict) else None
    if isinstance(rid, int | float) and not isinstance(rid, bool):
        rid = str(rid)
    return rid if isinstance(rid, str) and 0 < len(rid) <= ID_MAX else None


def _validation_details(exc: ValidationError) -> tuple[str, list[dict[str, Any]]]:
    errs = exc.errors(include_url=False, include_context=False, include_input=False)
    details = [{"field": ".".join(str(p) for p in e["loc"]), "message": e["msg"]} for e in errs]
    summary = "; ".join(f"{d['field'] or '(body)'}: {d['message']}" for d in details)
    return summary, details


def parse(command: Command | None, name: str, raw: bytes) -> tuple[str | None, CommandRequest | CommandResponse]:
    """Turn raw bytes into a validated request, or into the error response to send."""
    try:
        screen(raw)
    except Rejected as exc:
        rid = recover_id(raw)
        return rid, error(rid, "invalid_request", str(exc))
    try:
        doc = json.loads(raw)
    except ValueError as exc:  # not JSON, not UTF-8, or an integer too long to convert
        return None, error(None, "invalid_json", f"payload is not valid JSON: {exc}")
    rid = _sniff_id(doc)
    if not isinstance(doc, dict):
        return None, error(None, "invalid_request", "payload must be a JSON object")
    if command is None:
        return rid, error(rid, "unknown_command", f"unknown command {name!r}")
    if isinstance(doc.get("id"), int | float) and not isinstance(doc.get("id"), bool):
        doc["id"] = str(doc["id"])  # Node-RED users often send numeric ids
    try:
        return rid, command.request.model_validate(doc, strict=True)
    except ValidationError as exc:
        summary, details = _validation_details(exc)
        return rid, error(rid, "invalid_request", summary, details)


def execute(command: Command, request: CommandRequest) -> CommandResponse:
    try:
        result = command.handler(request)
    except CommandFailed as exc:
        return error(request.id, exc.code, exc.message)
    except Exception as exc:
        log.exception("command %s (id %s) failed", command.name, request.id)
        return error(request.id, "failed", f"{type(exc).__name__}: {exc}")
    if isinstance(result, BaseModel):
        data: dict[str, Any] = result.model_dump(mode="json")
    else:
        data = dict(result or {})
    return CommandResponse(id=request.id, ok=True, data=data)


class CommandServer:
    """Subscribes to a component's command topics and answers through one dispatch table."""

    def __init__(
        self,
        runtime: MqttRuntime,
        topics: Topics,
        component: ComponentTopics,
        commands: Iterable[Command],
        dedupe_window: float = 60.0,
        workers: int = 4,
    ) -> None:
        self.runtime = runtime
        self.topics = topics
        self.component = component
        self.table: dict[str, Command] = {c.name: c for c in commands}
        self.dedupe: Dedupe[Message] = Dedupe(dedupe_window)
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=f"cmd-{component.component}")
        self._backlog_limit = workers * QUEUED_PER_WORKER
        self._backlog = threading.BoundedSemaphore(self._backlog_limit)  # requests queued or running

    def attach(self) -> None:
        self.runtime.subscribe_relative(self.component.cmd_filter, self.on_message, qos=1)

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=False)

    def on_message(self, message: Message) -> None:
        relative = self.topics.relative(message.topic) or ""
        name = self.component.command_name_from(relative) or ""
        if not message.payload:
            return  # someone clearing a retained message: nothing to answer
        if message.retain:
            reason = "ignoring retained command: commands must never be retained"
            self.runtime.health.reject(self.component.cmd_filter, message.topic, reason)
            return
        command = self.table.get(name)
        rid, parsed = parse(command, name, message.payload)
        if message.response_topic and not is_reply_topic(self.topics.relative(message.response_topic), self.component):
            self._refuse_response_topic(message, name, rid)
            return
        if isinstance(parsed, CommandResponse):
            reason = parsed.error.message if parsed.error else ""
            self.runtime.health.reject(self.component.cmd_filter, message.topic, f"bad request: {reason}")
            self.reply(message, name, parsed)
            return
        assert command is not None
        earlier = self.dedupe.claim((name, parsed.id), message)
        if earlier is not None:
            self._repeat(message, command, parsed, earlier)
        elif command.deferred:
            self._defer(message, command, parsed)
        elif command.inline:
            self._answer(message, name, parsed.id, execute(command, parsed))
        elif not self._backlog.acquire(blocking=False):
            text = f"busy: {self._backlog_limit} requests already queued or running here; try again later"
            self.runtime.health.reject(self.component.cmd_filter, message.topic, text)
            busy = error(parsed.id, "busy", text)
            for asked in [message, *self.dedupe.forget((name, parsed.id))]:  # not run: a retry with its id runs
                self.reply(asked, name, busy)
        else:
            self._pool.submit(self._run, message, command, parsed)

    def _repeat(self, message: Message, command: Command, request: CommandRequest, earlier: CommandResponse | Running
                ) -> None:  # fmt: skip
        """A request id seen within the window: never run again; answered with the first answer."""
        name, request_id = command.name, request.id
        if isinstance(earlier, CommandResponse):
            log.info("repeated request id %r for %s: not run again, its answer sent again", request_id, name)
            answer = earlier
            if command.on_repeat is not None:
                try:
                    answer = command.on_repeat(request, earlier, message) or earlier
                except Exception:
                    log.exception("repeated request id %r for %s: sending its other messages again failed",
                                  request_id, name)  # fmt: skip
            self.reply(message, name, answer)
        elif earlier.queued:
            log.info("repeated request id %r for %s: still running, answered when it ends", request_id, name)
        else:
            log.info("repeated request id %r for %s ignored: %d repeats already wait for its answer", request_id,
                     name, WAITING)  # fmt: skip

    def _answer(self, message: Message, name: str, request_id: str, response: CommandResponse) -> None:
        """Answer ``message`` and the repeats that came while it ran; keep the answer for later ones.
        Its JSON is written once, for all of them and for the size the repeats' memory keeps."""
        wire = response.to_json()
        self.reply(message, name, response, wire)
        for repeat in self.dedupe.answered((name, request_id), response, len(wire)):
            self.reply(repeat, name, response, wire)

    def _refuse_response_topic(self, message: Message, name: str, request_id: str | None) -> None:
        """Answer on the default topic, never on the named one, and do not run the command."""
        where = self.topics.absolute(f"{REPLY}/<requester>/{self.component.base}")
        text = f"response topic {message.response_topic!r} refused: answers go only to {where}"
        log.warning("request on %s: %s", message.topic, text)
        plain = replace(message, response_topic=None, correlation_data=None)
        self.reply(plain, name, error(request_id, "response_topic_refused", text))

    def _run(self, message: Message, command: Command, request: CommandRequest) -> None:
        try:
            self._answer(message, command.name, request.id, execute(command, request))
        except Exception as exc:  # the pool would keep it silently in a future nobody reads
            self.runtime.health.fail(self.component.cmd_filter, message.topic, exc)
        finally:
            self._backlog.release()

    def _defer(self, message: Message, command: Command, request: CommandRequest) -> None:
        def reply(response: CommandResponse) -> None:
            self._answer(message, command.name, request.id, response)

        try:
            command.handler(request, message, reply)
        except Exception as exc:
            log.exception("command %s (id %s) failed", command.name, request.id)
            reply(error(request.id, "failed", f"{type(exc).__name__}: {exc}"))

    def reply(self, message: Message, name: str, response: CommandResponse, wire: bytes | None = None) -> None:
        """Answer ``message``: on its MQTT 5 response topic if it has one, else on res/<name>.
        ``wire``: the response's JSON, when already written."""
        payload = response if wire is None else wire
        try:
            if message.response_topic:
                self.runtime.publish_absolute(
                    message.response_topic, payload, qos=1, correlation_data=message.correlation_data
                )
            elif response.id is not None:
                self.runtime.publish(self.component.res(name), payload, qos=1)
            else:
                log.debug("no id and no response topic on %s: error counted and logged only", message.topic)
        except TopicError as exc:
            log.warning("cannot answer request on %s: %s", message.topic, exc)
