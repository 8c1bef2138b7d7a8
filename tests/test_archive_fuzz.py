"""Fuzzing uploads/readers/archive.py, masks.load and the .pt2 and .keras vetting stages with random,
mutated and truncated zips: a PruningError (one line) or a result comes out, never another exception,
and quickly."""

import functools
import io
from pathlib import Path
import tempfile
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


# --- the .pt2 and .keras vetting stages (before any library reads the file) ----------------------

@functools.cache
def _model_seeds() -> dict:
    import hostile

    return {"pt2": hostile.tiny_pt2(), "keras": hostile.zoo_keras()}


@st.composite
def mutated_model(draw, kind: str):
    """A valid .pt2 or .keras whose bytes, or one member's bytes (the JSON ones most often), are
    mutated as ``mutated`` does, then re-zipped."""
    import hostile

    data = _model_seeds()[kind]
    if draw(st.booleans()):  # raw bytes: headers, CRCs, the central directory
        raw = bytearray(data)
        for _ in range(draw(st.integers(1, 8))):
            raw[draw(st.integers(0, len(raw) - 1))] = draw(st.integers(0, 255))
        return bytes(raw[:draw(st.integers(len(raw) // 2, len(raw)))]) if draw(st.booleans()) else bytes(raw)
    entries = hostile.members(data)
    small = [i for i, (_, body) in enumerate(entries) if len(body) < 200_000]
    i = draw(st.sampled_from(small))
    body = bytearray(entries[i][1])
    for _ in range(draw(st.integers(1, 6))):
        at = draw(st.integers(0, max(len(body) - 1, 0)))
        body[at:at + 1] = draw(st.sampled_from([b"", b"[", b"{", b'"', b"9" * 12, b"-1", b"\xff", b"os.system"]))
    entries[i] = (entries[i][0], bytes(body))
    return hostile.zip_bytes(entries)


def _vet(reader, data: bytes, suffix: str):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"fuzz{suffix}"
        path.write_bytes(data)
        return _only_pruning_errors(lambda: reader(path))


@settings(max_examples=60, deadline=10_000, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_model("pt2"))
def test_pt2_vetting_only_refuses_with_pruning_error(data):
    from pruning.uploads.readers.pt2 import check_pt2

    _vet(check_pt2, data, ".pt2")


@settings(max_examples=60, deadline=10_000, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_model("keras"))
def test_keras_vetting_only_refuses_with_pruning_error(data):
    from pruning.uploads.readers.keras import read_keras

    _vet(read_keras, data, ".keras")
