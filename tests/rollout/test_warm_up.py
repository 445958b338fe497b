"""The new version gets traffic only once it answers: 404s (not synced yet) and errors are retried until
enough answers came, within a deadline."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from asteroid.rollout.warm_up import WARM_UP_REQUESTS, wait_until_answering
from tests.rollout.fakes import FakeClock


@dataclass
class Reply:
    status_code: int
    text: str = ""


@dataclass
class Service:
    statuses: list[int]
    bodies: list[Any] = field(default_factory=list)

    def post(self, url: str, json: Any, timeout: float) -> Reply:
        self.bodies.append(json)
        return Reply(self.statuses.pop(0) if self.statuses else 200, "not found")


def test_the_version_is_polled_until_it_answered_enough_times() -> None:
    service, clock = Service([404, 404, 500]), FakeClock()
    attempts = wait_until_answering("http://x/serve/asteroid/2", {"a": 1}, 60, post=service.post, clock=clock,
                                    sleep=clock.sleep)  # fmt: skip
    assert attempts == 3 + WARM_UP_REQUESTS and service.bodies[0] == {"a": 1}


def test_a_version_that_never_answers_times_out_naming_the_last_answer() -> None:
    service, clock = Service([404] * 1000), FakeClock()
    with pytest.raises(TimeoutError, match=r"did not answer within 5 s \(last: 404 not found\)"):
        wait_until_answering(
            "http://x/serve/asteroid/2", {}, 5, post=service.post, clock=clock, sleep=clock.sleep
        )
