"""Camera sources, one module each, chosen by ``source.type`` in the config.

A source module is imported only when a camera of that type opens, so OpenCV and numpy
are needed only by cameras that actually run: ``printmesh camera --check`` works without
them, and a missing package becomes a clear error naming it, on that camera only.
"""

from __future__ import annotations

from printmesh_camera.config import (
    DeviceSourceConfig,
    FileSourceConfig,
    SourceConfig,
    SyntheticSourceConfig,
    UrlSourceConfig,
)
from printmesh_camera.follow import PrinterFeeds
from printmesh_camera.sources.base import Frame, MissingDependency, SizeHint, Source, SourceError
from printmesh_camera.virtual_config import VirtualSourceConfig

__all__ = ["Frame", "MissingDependency", "SizeHint", "Source", "SourceError", "describe", "make_source"]


def describe(config: SourceConfig) -> str:
    """How errors and the ``cameras`` command name a source; never includes credentials."""
    if isinstance(config, DeviceSourceConfig):
        return f"device {config.device}"
    if isinstance(config, UrlSourceConfig):
        return f"url {config.url}"
    if isinstance(config, FileSourceConfig):
        return f"file {config.path}"
    if isinstance(config, VirtualSourceConfig):
        return f"virtual {config.mount} camera of printer {config.printer}"
    return f"synthetic {config.fps:g} fps" if config.fps else "synthetic (unpaced)"


def make_source(config: SourceConfig, hint: SizeHint, feeds: PrinterFeeds | None = None) -> Source:
    """Build (not open) the source for ``config``, importing its module now.

    ``feeds`` gives a virtual camera the printer it follows (the agent subscribes for it)."""
    try:
        if isinstance(config, DeviceSourceConfig):
            from printmesh_camera.sources.device import DeviceSource

            return DeviceSource(config, hint)
        if isinstance(config, UrlSourceConfig):
            from printmesh_camera.sources.url import UrlSource

            return UrlSource(config)
        if isinstance(config, FileSourceConfig):
            from printmesh_camera.sources.file import FileSource

            return FileSource(config)
        if isinstance(config, SyntheticSourceConfig):
            from printmesh_camera.sources.synthetic import SyntheticSource

            return SyntheticSource(config, hint)
        if isinstance(config, VirtualSourceConfig):
            from printmesh_camera.sources.virtual import VirtualSource

            follower = feeds.follower(config.printer) if feeds is not None else None
            return VirtualSource(config, hint, follower)
    except ImportError as exc:
        raise MissingDependency.from_import(exc) from None
    raise SourceError(f"unknown source type {getattr(config, 'type', '?')!r}")
