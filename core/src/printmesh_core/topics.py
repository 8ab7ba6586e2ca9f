"""Every MQTT topic name printmesh uses is built here, and nowhere else.

Topics are relative to a configurable root (``printmesh`` by default); the MQTT runtime
adds the root when it publishes. Keeping names in one module means the docs, the agents,
the bridge and the coordinator cannot drift apart.
"""

from __future__ import annotations

import functools
import hashlib
import re
from dataclasses import dataclass

WILDCARDS = ("+", "#")
NAME_MAX = 64  # characters in a node, camera, printer or sensor name (a topic level and a folder)
_SEGMENT = re.compile(r"^[A-Za-z0-9_.\-]+$")
# HA discovery's node_id and object_id must match this.
_HA_ID = re.compile(r"[^A-Za-z0-9_\-]")
# <root>/reply/<requester>/<node>/<component>[/...]: MQTT 5 response topics. A command server
# answers only there (never on a topic the requester names freely, which could be another
# component's command), and the broker's ACL lets only <requester> read its own subtree.
REPLY = "reply"
RESERVED_NODE_IDS = frozenset({REPLY})


class TopicError(ValueError):
    """A topic or topic segment that must not be used."""


def _shown(value: str) -> str:
    return repr(value if len(value) <= 40 else value[:40] + "…")


def check_segment(value: str, what: str = "topic segment") -> str:
    """Reject empty segments, slashes, wildcards, control characters, and '.' or '..' alone
    (a level that is also a path component somewhere must never name a folder's parent)."""
    if not value or not _SEGMENT.match(value):
        raise TopicError(f"invalid {what} {_shown(value)}: use letters, digits, '_', '-' or '.'")
    if not value.strip("."):
        raise TopicError(f"invalid {what} {value!r}: dots alone ('.', '..') name a folder, not a thing")
    return value


def check_name(value: str, what: str = "name") -> str:
    """A name given in a config that becomes one topic level *and* one path component (a node,
    camera, printer or sensor name): a topic segment of 1-``NAME_MAX`` characters that does not
    start with '.' (no hidden folders, no '.' or '..')."""
    if len(value) > NAME_MAX:
        raise TopicError(f"invalid {what} {_shown(value)}: {len(value)} characters, at most {NAME_MAX}")
    check_segment(value, what)
    if value.startswith("."):
        raise TopicError(f"invalid {what} {value!r}: it may not start with '.'")
    return value


def is_name(value: str) -> bool:
    """Would ``check_name`` accept ``value``?"""
    return 0 < len(value) <= NAME_MAX and bool(_SEGMENT.match(value)) and not value.startswith(".")


def name_or_digest(value: str, prefix: str = "id-") -> str:
    """``value`` when it is a safe name (one topic level, one path component), else a stable
    digest of it (``prefix`` + 20 hex digits): safe, and the same for the same input."""
    if is_name(value):
        return value
    return prefix + hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()[:20]


def check_publish_topic(topic: str) -> str:
    """A topic that may be published to: no wildcards, no empty levels, no NUL."""
    if not topic or "\x00" in topic:
        raise TopicError(f"invalid publish topic {topic!r}")
    if any(w in topic for w in WILDCARDS):
        raise TopicError(f"wildcards are not allowed in a publish topic: {topic!r}")
    if "" in topic.split("/"):
        raise TopicError(f"empty level in publish topic {topic!r}")
    return topic


def check_node_id(value: str) -> str:
    """A node id: one topic level, and not a level printmesh reserves below the root."""
    check_name(value, "node id")
    if value in RESERVED_NODE_IDS:
        raise TopicError(f"node id {value!r} is reserved (the reply namespace <root>/{REPLY}/...)")
    return value


def join(*parts: str) -> str:
    return "/".join(p.strip("/") for p in parts if p)


def ha_id(value: str) -> str:
    """Make a string safe as a Home Assistant discovery node_id/object_id."""
    return _HA_ID.sub("_", value)


@functools.lru_cache(maxsize=1024)
def _command_topic(base: str, kind: str, command: str) -> str:
    return join(base, kind, check_segment(command, "command name"))


@dataclass(frozen=True)
class ComponentTopics:
    """Topics of one component (one process) on one node, relative to the root."""

    node_id: str
    component: str

    @functools.cached_property
    def base(self) -> str:
        return join(self.node_id, self.component)

    @functools.cached_property
    def status(self) -> str:
        return join(self.base, "status")

    @functools.cached_property
    def state(self) -> str:
        return join(self.base, "state")

    @functools.cached_property
    def event(self) -> str:
        return join(self.base, "event")

    def cmd(self, command: str) -> str:
        return _command_topic(self.base, "cmd", command)

    def res(self, command: str) -> str:
        return _command_topic(self.base, "res", command)

    @functools.cached_property
    def cmd_filter(self) -> str:
        """Subscription filter matching every command of this component."""
        return join(self.base, "cmd", "+")

    def sub(self, *levels: str) -> str:
        """A component-specific topic such as ``host/command/<name>``."""
        return join(self.base, *(check_segment(level) for level in levels))

    def command_name_from(self, relative_topic: str) -> str | None:
        """The command name if ``relative_topic`` is one of this component's command topics."""
        prefix = join(self.base, "cmd") + "/"
        if relative_topic.startswith(prefix):
            name = relative_topic[len(prefix) :]
            return name if name and "/" not in name else None
        return None


@dataclass(frozen=True)
class Topics:
    """Topic factory for a node; components get their own subtree and status."""

    root: str
    node_id: str

    def __post_init__(self) -> None:
        for level in self.root.split("/"):
            check_segment(level, "topic root level")
        check_node_id(self.node_id)

    def component(self, name: str, node_id: str | None = None) -> ComponentTopics:
        return ComponentTopics(check_node_id(node_id or self.node_id), check_segment(name))

    def absolute(self, relative: str) -> str:
        return join(self.root, relative)

    def relative(self, absolute: str) -> str | None:
        prefix = self.root + "/"
        return absolute[len(prefix) :] if absolute.startswith(prefix) else None

    @property
    def everything(self) -> str:
        """Subscription filter for the whole printmesh tree (what the live view shows)."""
        return join(self.root, "#")


def requester_id(username: str | None, node_id: str, component: str) -> str:
    """Whose reply subtree: the broker account when it is a valid level (the ACL pattern
    ``<root>/reply/%u/#`` lets only that account read it), else ``<node>-<component>``."""
    if username and _SEGMENT.match(username) and username.strip("."):
        return username
    return f"{node_id}-{component}"


def reply_topic(requester: str, server: ComponentTopics) -> str:
    """Relative MQTT 5 response topic for ``requester``'s requests to ``server``."""
    return join(REPLY, check_segment(requester, "requester id"), server.base)


def reply_filter(requester: str) -> str:
    """Relative filter for every answer to ``requester``."""
    return join(REPLY, check_segment(requester, "requester id"), "#")


def reply_writes(server: ComponentTopics) -> str:
    """Relative filter of the response topics ``server`` may answer on (for the broker's ACL)."""
    return join(REPLY, "+", server.base, "#")


def is_reply_topic(relative: str | None, server: ComponentTopics) -> bool:
    """Is ``relative`` inside ``reply/<requester>/<server's node>/<server's component>``?"""
    if relative is None:
        return False
    parts = relative.split("/")
    return (
        len(parts) >= 4
        and parts[0] == REPLY
        and parts[2] == server.node_id
        and parts[3] == server.component
        and all(_SEGMENT.match(p) for p in parts)
    )


@dataclass(frozen=True)
class DiscoveryTopics:
    """Home Assistant MQTT discovery topics for one component of a node."""

    prefix: str
    node_id: str
    component: str

    @property
    def ha_node(self) -> str:
        return ha_id(f"printmesh_{self.node_id}_{self.component}")

    def config(self, platform: str, object_id: str) -> str:
        return join(self.prefix, check_segment(platform, "HA platform"), self.ha_node, ha_id(object_id), "config")

    @property
    def own_configs_filter(self) -> str:
        """Matches every discovery config this component may have published before."""
        return join(self.prefix, "+", self.ha_node, "+", "config")

    @property
    def birth(self) -> str:
        return join(self.prefix, "status")

    def parse_config_topic(self, topic: str) -> tuple[str, str] | None:
        """(platform, object_id) of one of our own discovery config topics."""
        parts = topic.split("/")
        prefix_len = len(self.prefix.split("/"))
        if len(parts) != prefix_len + 4 or parts[-1] != "config" or parts[prefix_len + 1] != self.ha_node:
            return None
        return parts[prefix_len], parts[prefix_len + 2]
