"""Passwords: generated once into a secrets folder, hashed into mosquitto's password file.

One file per user (``<secrets>/<user>``, mode 0600, the folder 0700) holding only the
password, so a device reads it with ``mqtt.password_file`` / ``PRINTMESH_MQTT__PASSWORD_FILE``
or as a Docker secret. A password that exists is kept: running the generator again changes
nobody's password unless asked (``--rotate``).

The password file uses mosquitto 2's own format, written here so the server needs no
``mosquitto_passwd``: ``user:$7$<iterations>$<base64 salt>$<base64 PBKDF2-HMAC-SHA512>``,
12 bytes of salt, 101 iterations and a 64-byte hash, exactly what ``mosquitto_passwd`` writes.
"""

from __future__ import annotations

import base64
import hashlib
import os
import secrets
from pathlib import Path

ITERATIONS = 101  # mosquitto_passwd's default (PW_DEFAULT_ITERATIONS)
SALT_BYTES = 12
HASH_BYTES = 64
PASSWORD_BYTES = 24  # 32 URL-safe characters


def hash_password(password: str, salt: bytes | None = None, iterations: int = ITERATIONS) -> str:
    """A ``$7$`` entry as mosquitto 2 verifies it."""
    salt = secrets.token_bytes(SALT_BYTES) if salt is None else salt
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations, HASH_BYTES)
    return f"$7${iterations}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def verify_password(password: str, entry: str) -> bool:
    _, seven, iterations, salt, digest = entry.split("$")
    if seven != "7":
        return False
    expected = base64.b64decode(digest)
    got = hashlib.pbkdf2_hmac("sha512", password.encode(), base64.b64decode(salt), int(iterations), len(expected))
    return secrets.compare_digest(got, expected)


def write_private(path: Path, text: str) -> None:
    """Write ``text`` readable by the owner only, from the first byte on."""
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def ensure_passwords(folder: Path, users: list[str], rotate: frozenset[str] = frozenset()) -> dict[str, str]:
    """Each user's password: the one in ``folder/<user>``, or a new one written there."""
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o700)
    out: dict[str, str] = {}
    for user in users:
        path = folder / user
        if path.exists() and user not in rotate:
            password = path.read_text().rstrip("\n")
            if password:
                out[user] = password
                continue
        password = secrets.token_urlsafe(PASSWORD_BYTES)
        write_private(path, password + "\n")
        out[user] = password
    return out


def unknown_secrets(folder: Path, users: list[str]) -> list[str]:
    """Secret files of users no longer in the mesh (left in place; the broker no longer knows them)."""
    if not folder.is_dir():
        return []
    return sorted(
        p.name for p in folder.iterdir() if p.is_file() and not p.name.startswith(".") and p.name not in users
    )


def password_file(passwords: dict[str, str]) -> str:
    return "".join(f"{user}:{hash_password(pw)}\n" for user, pw in passwords.items())
