"""Run by ha_check.sh with Home Assistant's python: publish the discovery messages the test built
from printmesh's entity code (retained), then ask Home Assistant for the YAML dashboard, which
makes it load and validate the file, and write its answer to $HA_OUT_DIR/lovelace.json."""

import asyncio
import json
import os
import sys
import time

import aiohttp
import paho.mqtt.client as mqtt


def publish(messages: list[list[str]]) -> None:
    client = mqtt.Client(client_id="ha-dashboard-scenario")
    client.connect("127.0.0.1", int(os.environ["BROKER_PORT"]))
    client.loop_start()
    infos = [client.publish(topic, payload, qos=1, retain=True) for topic, payload in messages]
    for info in infos:
        info.wait_for_publish(10)
    client.loop_stop()
    client.disconnect()


async def dashboard(url_path: str) -> dict:
    url = os.environ["HA_URL"] + "/api/websocket"
    async with aiohttp.ClientSession() as session, session.ws_connect(url) as ws:
        await ws.receive_json()
        await ws.send_json({"type": "auth", "access_token": os.environ["HA_TOKEN"]})
        assert (await ws.receive_json())["type"] == "auth_ok"
        await ws.send_json({"id": 1, "type": "lovelace/config", "url_path": url_path, "force": True})
        return await ws.receive_json()


def main() -> int:
    messages_file, url_path = sys.argv[1], sys.argv[2]
    with open(messages_file, encoding="utf-8") as f:
        publish(json.load(f))
    time.sleep(3)
    answer = asyncio.run(dashboard(url_path))
    with open(os.path.join(os.environ["HA_OUT_DIR"], "lovelace.json"), "w", encoding="utf-8") as f:
        json.dump(answer, f, indent=1)
    return 0 if answer.get("success") else 1


if __name__ == "__main__":
    sys.exit(main())
