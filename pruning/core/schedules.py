"""Pruning schedules: *when* to prune and *how much* (TF Model Optimization's vocabulary).

A schedule maps a training step (counted from 1) to the target sparsity to prune to at that
step, or ``None`` when no pruning happens then.  How weights are chosen lives elsewhere
(criteria/selection); the training glue lives in ``retrain.py``.
"""

from dataclasses import dataclass

from ..errors import PruningError
from .selection import check_fraction


def _pruning_turn(step, begin, end, frequency) -> bool:
    """TF-MOT's rule: inside [begin, end] (end -1 = open) and every ``frequency`` steps from begin."""
    return step >= begin and (end == -1 or step <= end) and (step - begin) % frequency == 0


@dataclass(frozen=True)
class ConstantSparsity:
    """Prune to ``sparsity`` at ``begin_step`` and every ``frequency`` steps until ``end_step``."""

    sparsity: float
    begin_step: int = 0
    end_step: int = -1  # -1: until training ends
    frequency: int = 100

    def __post_init__(self):
        check_fraction(self.sparsity)

    def __call__(self, step: int):
        return self.sparsity if _pruning_turn(step, self.begin_step, self.end_step, self.frequency) else None


@dataclass(frozen=True)
class PolynomialDecay:
    """Sparsity rising from ``initial`` to ``final`` between begin and end step along a polynomial:

        s(t) = final + (initial - final) * (1 - (t - begin) / (end - begin)) ** power

    pruned to at ``begin_step``, every ``frequency`` steps after it, and at ``end_step``.
    """

    initial: float
    final: float
    begin_step: int
    end_step: int
    frequency: int = 100
    power: int = 3

    def __post_init__(self):
        check_fraction(self.initial, "initial sparsity")
        check_fraction(self.final, "final sparsity")
        if self.end_step <= self.begin_step:
            raise PruningError(f"end step {self.end_step} must come after begin step {self.begin_step}")

    def target(self, step: int) -> float:
        progress = min(1.0, max(0.0, (step - self.begin_step) / (self.end_step - self.begin_step)))
        return self.final + (self.initial - self.final) * (1.0 - progress) ** self.power

    def __call__(self, step: int):
        turn = _pruning_turn(step, self.begin_step, self.end_step, self.frequency) or step == self.end_step
        return self.target(step) if turn else None


@dataclass(frozen=True)
class Dynamic:
    """Prune ``rate`` of the remaining weights at chosen fractions of training, never rewinding
    (the "dynamic pruning" class project: 17% at 1/3 and 2/3 of training)."""

    total_steps: int
    at: tuple = (1 / 3, 2 / 3)
    rate: float = 0.17

    def __post_init__(self):
        check_fraction(self.rate, "pruning rate")

    @property
    def final(self) -> float:
        return 1.0 - (1.0 - self.rate) ** len(self.at)

    def __call__(self, step: int):
        for k, fraction in enumerate(self.at, start=1):
            if step == max(1, round(fraction * self.total_steps)):
                return 1.0 - (1.0 - self.rate) ** k
        return None
