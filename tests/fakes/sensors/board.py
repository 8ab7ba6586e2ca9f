"""Fake Blinka ``board`` for tests: the Raspberry Pi's D0-D27 pins, and nothing else.

``FAKE_BOARD_ERROR=<text>`` makes the import fail the way Blinka does on a board it does
not know (NotImplementedError), to test that a sensor reports it and the agent runs on.
"""

from __future__ import annotations

import os


class Pin:
    def __init__(self, bcm: int) -> None:
        self.id = bcm

    def __repr__(self) -> str:
        return f"board.D{self.id}"


if os.environ.get("FAKE_BOARD_ERROR"):
    raise NotImplementedError(os.environ["FAKE_BOARD_ERROR"])

for _n in range(28):
    globals()[f"D{_n}"] = Pin(_n)
