"""printmesh sensor agent: temperature and humidity sensors (DHT11/22, linux-iio, simulated) over MQTT."""
