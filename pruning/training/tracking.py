"""The history of a tracked training run (IMP runs, experiments/imp_runs.py), kept the same way by
every trainer's ``train_tracked``: the validation loss and accuracy every ``eval_every`` steps,
the test accuracy every ``test_every`` steps, and at the early-stopping step (least validation
loss, Frankle & Carbin 2019) measured on the weights of that step.

    tracker = Tracker(iterations, eval_every, test_every)
    ... after each optimiser step:  if tracker.due(step): tracker.record(step, loss, accuracy, test, snapshot)
    history = tracker.finish(restore, test)
"""


class Tracker:
    def __init__(self, iterations: int, eval_every: int, test_every: int):
        self.iterations, self.eval_every, self.test_every = iterations, eval_every, test_every
        self.history, self._best = [], None  # _best: (loss, its history entry, its weights)

    def due(self, step: int) -> bool:
        return step % self.eval_every == 0 or step == self.iterations

    def record(self, step: int, loss, accuracy, test_accuracy, snapshot) -> None:
        """One measurement: the validation ``loss`` and ``accuracy`` (numbers, rounded here);
        ``test_accuracy()`` is called when a test is due, ``snapshot()`` (the weights, to test
        later) when the loss is the least so far."""
        loss = round(float(loss), 5)
        tested = step % self.test_every == 0 or step == self.iterations
        self.history.append({"iteration": step, "val_loss": loss, "val_accuracy": round(float(accuracy), 5),
                             "test_accuracy": test_accuracy() if tested else None})
        if self._best is None or loss < self._best[0]:
            self._best = (loss, self.history[-1], snapshot())

    def finish(self, restore, test_accuracy) -> list:
        """The history, with the test accuracy at the early-stopping step filled in: ``restore``
        is given that step's snapshot, then ``test_accuracy()`` is read (when it was not tested)."""
        _, entry, weights = self._best
        if entry["test_accuracy"] is None:
            restore(weights)
            entry["test_accuracy"] = test_accuracy()
        return self.history
