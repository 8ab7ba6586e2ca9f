"""printmesh core: the topic contract, payload models, configuration and MQTT runtime."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("printmesh-core")
except PackageNotFoundError:  # running from a source tree without an install
    __version__ = "0.0.0"
