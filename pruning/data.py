"""Datasets as uint8 arrays: mnist, fashion_mnist, cifar10 (normalisation belongs to each model).

Where the data comes from, in order:
1. the directory named by the ``PRUNING_DATA_DIR`` environment variable (``mnist.npz``,
   ``fashion_mnist.npz``, ``cifar10.npz`` holding x_train, y_train, x_test, y_test);
2. for the test splits of MNIST and Fashion-MNIST, the compressed copies shipped in
   ``pretrained/data/`` (so the explorer works offline on a fresh machine);
3. Keras's own downloader, when online.
If none works, one error names ``PRUNING_DATA_DIR``.
"""

import os
from pathlib import Path

import numpy as np

from . import memo
from .errors import DatasetUnavailable, PruningError
from .core.selection import check_whole

DATASETS = {
    "mnist": {"shape": (28, 28), "classes": 10},
    "fashion_mnist": {"shape": (28, 28), "classes": 10},
    "cifar10": {"shape": (32, 32, 3), "classes": 10},
}
CLASS_NAMES = {
    "mnist": [str(i) for i in range(10)],
    "fashion_mnist": ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                      "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"],
    "cifar10": ["airplane", "automobile", "bird", "cat", "deer",
                "dog", "frog", "horse", "ship", "truck"],
}
SHIPPED = Path(__file__).resolve().parent.parent / "pretrained" / "data"
ENV = "PRUNING_DATA_DIR"


def check_name(name: str) -> str:
    if not isinstance(name, str) or name not in DATASETS:
        raise PruningError(f"unknown dataset {name!r:.40}; choose one of: {', '.join(DATASETS)}")
    return name


def available(name: str, split: str = "test") -> bool:
    """Whether the split can be read without the network: in ``PRUNING_DATA_DIR`` or shipped."""
    root = os.environ.get(ENV)
    if root and (Path(root) / f"{name}.npz").is_file():
        return True
    return (SHIPPED / f"{name}-{split}.npz").is_file()


@memo.lru(maxsize=None)
def load(name: str, split: str = "test") -> tuple[np.ndarray, np.ndarray]:
    """(x, y) as read-only uint8 arrays; x is (n, 28, 28) or (n, 32, 32, 3), y is (n,)."""
    check_name(name)
    if split not in ("train", "test"):
        raise PruningError(f"unknown split {split!r}; choose one of: train, test")
    x, y = _read(name, split)
    x, y = np.ascontiguousarray(x, dtype=np.uint8), np.ascontiguousarray(y, dtype=np.uint8).reshape(-1)
    x.setflags(write=False)
    y.setflags(write=False)
    return x, y


def _read(name, split):
    tried = []
    root = os.environ.get(ENV)
    if root:
        path = Path(root) / f"{name}.npz"
        if path.is_file():
            with np.load(path, allow_pickle=False) as data:
                return data[f"x_{split}"], data[f"y_{split}"]
        tried.append(f"{path} does not exist")
    shipped = SHIPPED / f"{name}-{split}.npz"
    if shipped.is_file():
        with np.load(shipped, allow_pickle=False) as data:
            return data["x"], data["y"]
    try:
        return _download(name, split)
    except Exception as exc:  # offline, or no Keras: say what to set instead
        tried.append(f"download failed ({type(exc).__name__})")
    raise DatasetUnavailable(
        f"the {name} {split} split is not available ({'; '.join(tried)}): set {ENV} to a directory "
        f"holding {name}.npz with x_train, y_train, x_test, y_test"
    )


def _download(name, split):
    import keras  # only for its downloader

    loaders = {"mnist": keras.datasets.mnist, "fashion_mnist": keras.datasets.fashion_mnist,
               "cifar10": keras.datasets.cifar10}
    (x_train, y_train), (x_test, y_test) = loaders[name].load_data()
    return (x_train, y_train) if split == "train" else (x_test, y_test)


CHECK_SUBSET = 1000  # test images in the class-stratified subset whose accuracy model.json also records


def stratified_indices(y: np.ndarray, limit: int | None) -> np.ndarray:
    """Indices of a class-stratified subset of ``limit`` examples (all of them if None).

    Deterministic: each class contributes its first examples in dataset order, in proportion to
    its share (largest remainders get the leftover places).
    """
    n = len(y)
    limit = None if limit is None else check_whole(limit, "limit", 1)
    if limit is None or limit >= n:
        return np.arange(n)
    classes, counts = np.unique(y, return_counts=True)
    exact = counts * limit / n
    take = np.floor(exact).astype(int)
    leftover = int(limit - take.sum())
    take[np.argsort(-(exact - take), kind="stable")[:leftover]] += 1
    picked = [np.flatnonzero(y == c)[:k] for c, k in zip(classes, take, strict=True)]
    return np.sort(np.concatenate(picked))
