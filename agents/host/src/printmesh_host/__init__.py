"""printmesh host agent: host metrics and configured shell commands, published over MQTT."""
