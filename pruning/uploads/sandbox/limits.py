"""The limits a sandboxed worker runs under: settings, read from the environment.

    PRUNING_WORKER_MEMORY_MB     2048  heap and private memory of one worker (RLIMIT_DATA)
    PRUNING_WORKER_CPU_S           60  CPU seconds of one request (RLIMIT_CPU, raised per request)
    PRUNING_WORKER_TIMEOUT_S       60  wall-clock seconds of one request (the server kills the worker)
    PRUNING_WORKER_TRAIN_S        600  wall-clock (and CPU) seconds of one retraining request
    PRUNING_WORKER_LIFETIME_CPU_S 3600 CPU seconds a worker may use in all before it is replaced
    PRUNING_WORKER_FILES          256  open files (RLIMIT_NOFILE)
    PRUNING_WORKER_FILE_MB       1024  largest file a worker may write (RLIMIT_FSIZE)
    PRUNING_MAX_WORKERS             2  workers alive at once, all visitors together
    PRUNING_MAX_UPLOADS             2  uploaded models held per browser session
    PRUNING_WORKER_WAIT_S          30  how long a request waits for a free worker before it is refused
    PRUNING_UPLOAD_PARAMETERS 5000000  prunable weights of one upload (the server holds its weights)

The address space (RLIMIT_AS) is capped at memory + 6 GB: TensorFlow alone maps about 2.6 GB of
shared libraries and reservations, which RLIMIT_DATA does not count and RLIMIT_AS would.
"""

from dataclasses import dataclass, fields
import os

from ...errors import PruningError


def too_many(prunable: int, budget: int) -> str:
    """The refusal of an upload over ``Limits.upload_parameters``."""
    return (f"the model has {prunable:,} prunable weights; this server accepts uploads of at most {budget:,} "
            f"(PRUNING_UPLOAD_PARAMETERS)")


@dataclass(frozen=True)
class Limits:
    memory_mb: int = 2048
    cpu_s: int = 60
    timeout_s: float = 60.0
    train_s: float = 600.0
    lifetime_cpu_s: int = 3600
    files: int = 256
    file_mb: int = 1024
    max_workers: int = 2
    max_uploads: int = 2
    wait_s: float = 30.0
    upload_parameters: int = 5_000_000  # prunable weights of one upload, held by the server per weight set

    @property
    def address_space_mb(self) -> int:
        return self.memory_mb + 6144

    @classmethod
    def from_env(cls, environ=os.environ) -> "Limits":
        """The defaults above, each replaced by ``PRUNING_WORKER_<NAME>`` / ``PRUNING_<NAME>`` if set."""
        values = {}
        for f in fields(cls):
            server_wide = f.name in ("max_workers", "max_uploads", "upload_parameters")
            key = ("PRUNING_" if server_wide else "PRUNING_WORKER_") + f.name.upper()
            raw = environ.get(key)
            if raw is None:
                continue
            kind = type(f.default)
            try:
                value = kind(raw)
            except ValueError:
                raise PruningError(f"{key}={raw[:40]!r} is not a number") from None
            if not value > 0 or value != value or value == float("inf"):
                raise PruningError(f"{key} must be a positive number, not {raw[:40]!r}")
            values[f.name] = value
        return cls(**values)
