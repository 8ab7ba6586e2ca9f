"""Check what a real Home Assistant makes of each component's MQTT discovery (see ``scripts/ha-check --help``)."""
