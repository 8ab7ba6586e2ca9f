"""The bridge's broker password in a real OctoPrint: admins see it, nobody else does.

OctoPrint keeps the plugin's settings (its ``mqtt.password`` included) in its config.yaml;
the plugin marks the password as an admin-only settings path, so the settings API hands it
to an admin (the settings dialog needs it) and leaves it out for any other user and for
anonymous requests. The password is also never in OctoPrint's log.
"""

from __future__ import annotations

import http.cookiejar
import json
import urllib.error
import urllib.request
from pathlib import Path

from octoprint_harness import start_octoprint

from printmesh_devkit.broker import LocalBroker

SECRET = "bridge-s3cret-7f2c"
KEY_PASS = "tls-key-pass-91ab"  # an encrypted client key's passphrase: as secret as the password


def _request(
    opener: urllib.request.OpenerDirector, url: str, body: dict | None = None, csrf: str | None = None
) -> tuple[int, str]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method="POST" if data else "GET")
    if data:
        req.add_header("Content-Type", "application/json")
    if csrf:
        req.add_header("X-CSRF-Token", csrf)
    try:
        with opener.open(req, timeout=10) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_only_admins_see_the_bridges_broker_password(broker: LocalBroker, tmp_path: Path):
    mqtt = {"host": "127.0.0.1", "port": broker.port, "username": "octo-printer", "password": SECRET,
            "tls": {"enabled": False, "key_password": KEY_PASS}}  # fmt: skip
    octoprint = start_octoprint(tmp_path / "octoprint", {"node_id": "octo", "mqtt": mqtt})
    try:
        octoprint.wait_operational()
        settings = octoprint.api("GET", "/api/settings")
        assert settings["plugins"]["printmesh"]["mqtt"]["password"] == SECRET, "the admin's settings dialog has it"
        assert settings["plugins"]["printmesh"]["mqtt"]["tls"]["key_password"] == KEY_PASS
        octoprint.api("POST", "/api/access/users", {"name": "viewer", "password": "viewer-pw-123", "active": True,
                                                    "admin": False})  # fmt: skip
        jar = http.cookiejar.CookieJar()
        viewer = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
        _request(viewer, f"{octoprint.url}/")  # sets OctoPrint's CSRF cookie, which a cookie login must echo
        csrf = next((c.value for c in jar if c.name.startswith("csrf_token")), None)
        status, body = _request(viewer, f"{octoprint.url}/api/login", {"user": "viewer", "pass": "viewer-pw-123"}, csrf)
        assert status == 200, body[:300]
        status, body = _request(viewer, f"{octoprint.url}/api/settings")
        assert status == 200 and "printmesh" in json.loads(body)["plugins"], body[:300]
        assert SECRET not in body and json.loads(body)["plugins"]["printmesh"]["mqtt"].get("password") is None
        assert (
            KEY_PASS not in body and json.loads(body)["plugins"]["printmesh"]["mqtt"]["tls"].get("key_password") is None
        )
        anonymous = urllib.request.build_opener()
        status, body = _request(anonymous, f"{octoprint.url}/api/settings")
        assert SECRET not in body and KEY_PASS not in body, status
        assert SECRET not in octoprint.log() and KEY_PASS not in octoprint.log()
        assert "no trusted coordinators (commands.trusted_holders)" in octoprint.log(), "the open default says so"
    finally:
        octoprint.stop()
