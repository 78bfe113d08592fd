"""Fixtures of the emulator's own tests: each test gets emulators of its own on loopback ports."""

from __future__ import annotations

import pytest

from memories_emulator import MemoriesEmulator
from memories_emulator.tests.support import KEY, CallbackReceiver, FakeClock


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
def make_emulator():
    started = []

    def make(**kwargs):
        options = {"keys": [KEY], "upload_interval": 0, "callback_delay": 0.05, "parse_delay": 0.2}
        emu = MemoriesEmulator(**{**options, **kwargs}).start()
        started.append(emu)
        return emu

    yield make
    for emu in started:
        emu.stop()


@pytest.fixture
def emu(make_emulator):
    return make_emulator()


@pytest.fixture
def receiver():
    receiver = CallbackReceiver()
    yield receiver
    receiver.close()
