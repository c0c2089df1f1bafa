"""Sign-in throttling with a clock the test turns: delays grow for the guesser, the owner is never locked."""

from __future__ import annotations

from core.throttle import FREE_PER_ADDRESS, FREE_PER_NAME, MAX_DELAY_S, WINDOW_S, SignInThrottle


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_delays_start_after_a_few_failures_and_double() -> None:
    clock = Clock()
    throttle = SignInThrottle(clock)
    waits = []
    for _ in range(FREE_PER_NAME + 4):
        assert throttle.wait_s("10.0.0.1", "bob") == 0
        throttle.failed("10.0.0.1", "bob")
        waits.append(throttle.wait_s("10.0.0.1", "bob"))
        clock.now += waits[-1]
    assert waits[: FREE_PER_NAME - 1] == [0] * (FREE_PER_NAME - 1)
    assert waits[FREE_PER_NAME - 1 :] == [1, 2, 4, 8, 16]


def test_someone_elses_failures_never_hold_the_owner_back() -> None:
    throttle = SignInThrottle(Clock())
    for _ in range(50):
        throttle.failed("10.0.0.66", "bob")
    assert throttle.wait_s("10.0.0.66", "bob") > 0
    assert throttle.wait_s("10.0.0.2", "bob") == 0  # Bob at his own desk


def test_spraying_one_password_over_many_names_is_slowed() -> None:
    throttle = SignInThrottle(Clock())
    for i in range(FREE_PER_ADDRESS):
        assert throttle.wait_s("10.0.0.66", f"user{i}") == 0
        throttle.failed("10.0.0.66", f"user{i}")
    assert throttle.wait_s("10.0.0.66", "a-name-never-tried") >= 1


def test_delays_are_capped_forgotten_after_the_window_and_forgiven_on_success() -> None:
    clock = Clock()
    throttle = SignInThrottle(clock)
    for _ in range(40):
        throttle.failed("10.0.0.3", "carol")
    assert throttle.wait_s("10.0.0.3", "carol") == MAX_DELAY_S
    clock.now += WINDOW_S + 1
    assert throttle.wait_s("10.0.0.3", "carol") == 0
    for _ in range(FREE_PER_NAME + 1):
        throttle.failed("10.0.0.4", "dave")
    throttle.succeeded("10.0.0.4", "dave")
    assert throttle.wait_s("10.0.0.4", "dave") == 0
