"""printmesh camera agent: previews and on-request JPEG captures, published over MQTT as raw bytes."""
