"""The one exception type for bad input: the command line prints it as one line, exit code 2."""


class PruningError(ValueError):
    """Bad input from a user (unknown name, out-of-range value, mismatched file, ...)."""


class DatasetUnavailable(PruningError):
    """A dataset is neither in PRUNING_DATA_DIR, nor shipped, nor downloadable."""
