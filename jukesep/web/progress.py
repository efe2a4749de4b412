"""How far a separation is and how long it still needs, as a musician reads it: seconds of audio done,
a stage name, and a time left that counts down steadily instead of jumping with every chunk."""
from __future__ import annotations

import math

STAGES = ("decoding", "separating", "refining", "writing")
RATE_TAU = 10.0  # seconds of wall time the measured speed is averaged over
ETA_TAU = 6.0  # seconds the shown time left takes to follow a change of speed


class EtaClock:
    """Speed of a separation (seconds of audio per second), measured from progress reports and
    smoothed, and the time left it predicts. The estimate counts down with the wall clock and moves
    toward the newly measured one gradually, so one slow or fast chunk does not make it jump."""

    def __init__(self):
        self.first: tuple[float, float] | None = None  # (time, done) of the first report: the model's start
        self.last: tuple[float, float] | None = None
        self.rate: float | None = None
        self.shown: tuple[float, float] | None = None  # (time, eta) last answered

    def report(self, now: float, done: float) -> None:
        if self.first is None:
            self.first = self.last = (now, done)
            return
        then, before = self.last
        if done <= before or now <= then:
            return
        measured = (done - before) / (now - then)
        if self.rate is None:  # the first measurement: the average since the model started
            self.rate = (done - self.first[1]) / (now - self.first[0])
        else:
            weight = 1.0 - math.exp(-(now - then) / RATE_TAU)
            self.rate += weight * (measured - self.rate)
        self.last = (now, done)

    def eta(self, now: float, done: float, total: float) -> float | None:
        """Seconds left, or None before the speed is known."""
        if not self.rate or self.rate <= 0 or total <= 0:
            return None
        fresh = max(0.0, total - done) / self.rate
        if self.shown is None:
            value = fresh
        else:
            then, before = self.shown
            counted = max(0.0, before - (now - then))  # the last answer, counted down
            weight = 1.0 - math.exp(-max(0.0, now - then) / ETA_TAU)
            value = counted + weight * (fresh - counted)
        self.shown = (now, value)
        return value
