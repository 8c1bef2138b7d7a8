"""Fuzzing uploads/readers/archive.py and masks.load with random, mutated and truncated zips: a
PruningError (one line) or a result comes out, never another exception, and quickly."""

import io
import warnings
import zipfile

from hypothesis import HealthCheck, given, settings, strategies as st
import numpy as np

import pruning
from pruning.core import masks
from pruning.uploads.readers.archive import read_zip

FUZZ = settings(max_examples=150, deadline=2000, suppress_health_check=[HealthCheck.too_slow])


def _valid_mask(save=np.savez_compressed) -> bytes:
    """A mask file; stored (np.savez) its .npy headers are open to the mutations."""
    buffer = io.BytesIO()
    mask = pruning.Mask({"fc.weight": np.eye(6, dtype=bool), "conv/kernel": np.ones((3, 3, 2), bool)},
                        {"model": "m", "sparsity": 0.5})
    save(buffer, **mask, __meta__=np.array('{"model": "m", "sparsity": 0.5}'))
    return buffer.getvalue()


def _valid_zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        z.writestr("a/one", b"1" * 100)
        z.writestr(zipfile.ZipInfo("a/two"), b"22")
        z.writestr("b/three.json", b'{"x": [1, 2, 3]}', compress_type=zipfile.ZIP_DEFLATED)
    return buffer.getvalue()


SEEDS = [_valid_mask(), _valid_mask(np.savez), _valid_zip()]


@st.composite
def mutated(draw):
    """A valid zip with a few bytes overwritten, a slice cut out, and maybe truncated."""
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(0, 8))):
        data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
    if draw(st.booleans()):
        start = draw(st.integers(0, len(data)))
        del data[start:start + draw(st.integers(0, 64))]
    if draw(st.booleans()):
        data = data[:draw(st.integers(0, len(data)))]
    return bytes(data)


ANY_BYTES = st.one_of(mutated(), st.binary(max_size=512), st.binary(max_size=64).map(lambda b: b"PK\x03\x04" + b))


def _only_pruning_errors(call):
    try:
        return call()
    except pruning.PruningError as err:
        assert "\n" not in str(err)
        return None


@FUZZ
@given(ANY_BYTES)
def test_read_zip_only_refuses_with_pruning_error(data):
    members = _only_pruning_errors(lambda: read_zip(io.BytesIO(data), "fuzz.zip", max_member=1 << 20,
                                                    max_total=4 << 20))
    assert members is None or all(isinstance(v, bytes) for v in members.values())


@FUZZ
@given(ANY_BYTES)
def test_mask_load_only_refuses_with_pruning_error(data):
    mask = _only_pruning_errors(lambda: masks.load(io.BytesIO(data)))
    assert mask is None or all(arr.dtype.kind in masks.ARRAY_KINDS for arr in mask.values())


@FUZZ
@given(st.lists(st.tuples(st.text(min_size=1, max_size=12), st.binary(max_size=64)), max_size=6))
def test_mask_load_of_random_members(entries):
    buffer = io.BytesIO()
    with warnings.catch_warnings(), zipfile.ZipFile(buffer, "w") as z:
        warnings.simplefilter("ignore")  # duplicate names are allowed here on purpose
        for name, data in entries:
            z.writestr(zipfile.ZipInfo(name), data)
    _only_pruning_errors(lambda: masks.load(io.BytesIO(buffer.getvalue())))
