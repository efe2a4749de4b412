"""What stops a training run (--steps, or --minutes of wall time, whichever comes first), what its
progress counts toward, and the line that says which limit stopped it and how to go on. Shared by
the main loop (`train.loop`) and the peer baselines (`evaluate.peers`)."""
from __future__ import annotations

import time

STEPS, MINUTES, INTERRUPTED = "steps", "minutes", "interrupted"


class Budget:
    """--steps (a total, earlier steps of a resumed run included) and --minutes (of this invocation;
    0 = no limit), measured from construction."""

    def __init__(self, steps: int, minutes: float = 0.0, start_step: int = 0, clock=time.monotonic):
        self.steps, self.minutes, self.start_step, self.clock = steps, minutes, start_step, clock
        self.started = clock()

    def elapsed(self) -> float:
        """Seconds since the start."""
        return self.clock() - self.started

    def stop_reason(self, step: int) -> str | None:
        """STEPS or MINUTES once that limit is reached, else None."""
        if step >= self.steps:
            return STEPS
        if self.minutes and self.elapsed() > 60 * self.minutes:
            return MINUTES
        return None

    def progress(self, step: int, earlier_minutes: float = 0.0) -> float:
        """How far (0 to 1) the run is through its budget: steps, or wall time counting the
        `earlier_minutes` of the invocations it resumed, whichever is further on."""
        done = step / self.steps
        if not self.minutes:
            return min(1.0, done)
        spent = earlier_minutes + self.elapsed() / 60
        return min(1.0, max(done, spent / (earlier_minutes + self.minutes)))

    def expected_steps(self, step: int) -> int:
        """The step the run will stop at: --steps, or fewer where, at the speed so far, --minutes
        runs out first (so a progress bar does not count toward a total it will never reach)."""
        done, elapsed = step - self.start_step, self.elapsed()
        if not self.minutes or done <= 0 or elapsed <= 0:
            return self.steps
        reachable = step + int(done / elapsed * max(0.0, 60 * self.minutes - elapsed))
        return min(self.steps, max(step, reachable))

    def describe(self, reason: str, step: int) -> str:
        """Which limit stopped the run, e.g. "reached --steps 800" or "time budget (--minutes 30) used
        at step 120 of 800"."""
        if reason == STEPS:
            return f"reached --steps {self.steps}"
        if reason == MINUTES:
            return f"time budget (--minutes {self.minutes:g}) used at step {step} of {self.steps}"
        return f"interrupted at step {step} of {self.steps}"


def how_to_continue(command: str, reason: str, steps: int) -> str:
    """`command`: the resuming command without a budget, e.g. "jukesep train vqvae --resume --out RUN"."""
    if reason == STEPS:
        return f"to train longer: {command} --steps N (N > {steps}) or --minutes M"
    return f"to continue: {command} (add --steps N or --minutes M to change the budget)"
