"""Datasets: shipped test splits, PRUNING_DATA_DIR, and one clear error naming the setting."""

import os

import numpy as np
import pytest

from pruning import data
from pruning.errors import DatasetUnavailable


@pytest.fixture(autouse=True)
def fresh_cache():
    data.load.cache_clear()
    yield
    data.load.cache_clear()


@pytest.mark.parametrize("name", ["mnist", "fashion_mnist"])
def test_shipped_test_splits_work_offline(name, monkeypatch):
    monkeypatch.delenv(data.ENV, raising=False)
    x, y = data.load(name, "test")
    assert x.shape == (10000, 28, 28) and x.dtype == np.uint8 and y.shape == (10000,)
    assert np.bincount(y).tolist() == ([980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
                                       if name == "mnist" else [1000] * 10)
    assert not x.flags.writeable  # shared read-only between sessions


def test_missing_everywhere_names_the_setting(tmp_path, monkeypatch):
    monkeypatch.setenv(data.ENV, str(tmp_path))
    monkeypatch.setattr(data, "_download", lambda name, split: (_ for _ in ()).throw(OSError("offline")))
    with pytest.raises(DatasetUnavailable, match="set PRUNING_DATA_DIR") as err:
        data.load("cifar10", "test")
    assert str(tmp_path / "cifar10.npz") in str(err.value)


def test_unknown_dataset_and_split():
    with pytest.raises(Exception, match="choose one of: mnist, fashion_mnist, cifar10"):
        data.load("imagenet")
    with pytest.raises(Exception, match="choose one of: train, test"):
        data.load("mnist", "validation")


@pytest.mark.skipif(not os.environ.get(data.ENV), reason="needs PRUNING_DATA_DIR with the full datasets")
def test_full_data_dir_matches_the_shipped_test_split():
    full = data.load("mnist", "test")
    x_train, y_train = data.load("mnist", "train")
    assert x_train.shape == (60000, 28, 28) and len(y_train) == 60000
    assert np.array_equal(np.load(data.SHIPPED / "mnist-test.npz")["x"], full[0])
