"""Clocks for the sender: real time, a fast clock, and a virtual one.

The sender only asks a clock for `now()` (aware UTC) and to `sleep(seconds)`,
so scheduled delivery can be tested in seconds: `FastClock(speed=3600)` runs
an hour per real second; `VirtualClock` jumps to the time it is asked to wait
for (used by the demo, whose simulated recipients live in simulated time).
"""
from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(timezone.utc)

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)


class FastClock:
    """Starts at `start` (default: now) and runs `speed` times faster than real time."""

    def __init__(self, speed: float, start: datetime | None = None):
        if not speed > 0:
            raise ValueError("speed: must be > 0")
        self.speed = float(speed)
        self.start = start or datetime.now(timezone.utc)
        self._t0 = time.monotonic()

    def now(self) -> datetime:
        return self.start + timedelta(seconds=(time.monotonic() - self._t0) * self.speed)

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds / self.speed)


class VirtualClock:
    """Time advances only when the sender waits: `sleep` jumps ahead at once."""

    def __init__(self, start: datetime | None = None):
        self.t = start or datetime.now(timezone.utc)

    def now(self) -> datetime:
        return self.t

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            self.t += timedelta(seconds=seconds)
