"""Sign-in throttling: growing delays per client address and user name, never a lock a stranger can set."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

WINDOW_S = 900.0  # failures older than this are forgotten
FREE_PER_NAME = 3  # failed guesses of one name from one address before delays start
FREE_PER_ADDRESS = 10  # failed guesses of any names from one address (password spraying) before delays start
FIRST_DELAY_S = 1.0  # then each failure doubles the wait...
MAX_DELAY_S = 300.0  # ...up to this
MAX_TRACKED = 50_000  # keys kept in memory; the oldest are dropped past this


@dataclass
class _Failures:
    times: list[float] = field(default_factory=list)

    def recent(self, now: float) -> list[float]:
        self.times = [t for t in self.times if now - t < WINDOW_S]
        return self.times


def _delay(failures: int, free: int) -> float:
    if failures < free:
        return 0.0
    return min(MAX_DELAY_S, FIRST_DELAY_S * 2 ** (failures - free))


class SignInThrottle:
    """How long a client must wait before its next sign-in attempt is even checked.

    Counted per (address, name) and per address over all names, in two separate maps: a guesser slows only
    itself, and the owner of the account, from their own address, is never held back by someone else.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._by_name: dict[tuple[str, str], _Failures] = {}
        self._by_address: dict[str, _Failures] = {}

    def wait_s(self, address: str, name: str) -> int:
        """Whole seconds until an attempt from `address` for `name` is allowed (0: now)."""
        now = self.clock()
        waits = [0.0]
        for entry, free in (
            (self._by_name.get((address, name)), FREE_PER_NAME),
            (self._by_address.get(address), FREE_PER_ADDRESS),
        ):
            recent = entry.recent(now) if entry else []
            if recent:
                waits.append(recent[-1] + _delay(len(recent), free) - now)
        return max(0, math.ceil(max(waits)))

    def failed(self, address: str, name: str) -> float:
        """Count a failure (callers count it before the password is checked, so that a burst of parallel
        guesses is counted as it comes); returns its time, for `succeeded`."""
        now = self.clock()
        if len(self._by_name) + len(self._by_address) >= MAX_TRACKED:
            self._forget_stale(now)
        self._by_name.setdefault((address, name), _Failures()).times.append(now)
        self._by_address.setdefault(address, _Failures()).times.append(now)
        return now

    def succeeded(self, address: str, name: str, at: float | None = None) -> None:
        """The right password: this address's guesses of this name are forgiven, and the attempt counted
        at `at` is taken back from the address's count."""
        self._by_name.pop((address, name), None)
        entry = self._by_address.get(address)
        if entry is not None and at in entry.times:
            entry.times.remove(at)

    def _forget_stale(self, now: float) -> None:
        for table in (self._by_name, self._by_address):
            for key in [k for k, v in table.items() if not v.recent(now)]:
                del table[key]  # type: ignore[arg-type]
        while len(self._by_name) + len(self._by_address) >= MAX_TRACKED:
            table = self._by_name if self._by_name else self._by_address
            del table[next(iter(table))]  # type: ignore[arg-type]
