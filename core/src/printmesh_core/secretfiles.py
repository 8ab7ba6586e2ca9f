"""Secrets from files: ``password_file: /run/secrets/mqtt`` instead of ``password: ...``.

Docker secrets, systemd credentials and the secrets folder ``printmesh broker-config``
writes all hand a process a file, not a value: any ``SecretStr`` setting ``<key>`` may be
given as ``<key>_file`` (``PRINTMESH_MQTT__PASSWORD_FILE`` in the environment). The file is
read while the settings load, so the value never appears in the config text, and pydantic's
``SecretStr`` keeps it masked in ``--check``, in reprs and in logs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import SecretStr

SUFFIX = "_file"


class SecretFileError(ValueError):
    """A secret file that cannot be used; the message names the key."""


def field_model(annotation: Any) -> Any:
    """The pydantic model inside ``X | None`` and similar, else the annotation itself."""
    return next((a for a in getattr(annotation, "__args__", ()) if hasattr(a, "model_fields")), annotation)


def _is_secret(annotation: Any) -> bool:
    return annotation is SecretStr or SecretStr in getattr(annotation, "__args__", ())


def is_secret_file(fields: dict[str, Any], key: str) -> bool:
    """Is ``key`` the ``_file`` form of a secret field (and not a field of its own, like ``ca_file``)?"""
    base = key[: -len(SUFFIX)]
    return key.endswith(SUFFIX) and key not in fields and base in fields and _is_secret(fields[base].annotation)


def read_secret_files(model: Any, data: dict[str, Any], where: str = "") -> dict[str, Any]:
    """Replace every ``<key>_file`` of a secret by ``<key>`` with the file's text, recursively.

    One trailing newline is dropped (``echo`` adds one). Naming both the value and its file,
    or a file that cannot be read, is an error naming the key.
    """
    fields = getattr(model, "model_fields", {})
    out = dict(data)
    for key, value in data.items():
        if is_secret_file(fields, key):
            base = key[: -len(SUFFIX)]
            del out[key]
            if value is None:  # written out as unset (``password_file: null``)
                continue
            if base in data and data[base] is not None:
                raise SecretFileError(f"{where}{key}: give either {base} or {key}, not both")
            try:
                text = Path(str(value)).read_text()
            except OSError as exc:
                raise SecretFileError(f"{where}{key}: cannot read secret file {value}: {exc.strerror or exc}") from None
            out[base] = text[:-1] if text.endswith("\n") else text
        elif key in fields and isinstance(value, dict):
            out[key] = read_secret_files(field_model(fields[key].annotation), value, f"{where}{key}.")
    return out
