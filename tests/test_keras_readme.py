"""The README's "Use it from your own Keras code" snippets run as written."""

import re
from pathlib import Path

import numpy as np

import pruning
from pruning import data

README = Path(__file__).resolve().parent.parent / "README.md"


def snippets() -> list:
    text = README.read_text()
    section = re.split(r"\n##+ ", text.split("### Use it from your own Keras code", 1)[1], maxsplit=1)[0]
    return re.findall(r"```python\n(.*?)```", section, flags=re.S)


def test_keras_snippets_run(tmp_path, monkeypatch, capsys):
    blocks = snippets()
    assert len(blocks) == 2
    monkeypatch.chdir(tmp_path)
    real = data.load

    def small_train(name, split="test"):  # fine-tune on 600 test images: fast, and needs no download
        x, y = real(name, "test")
        return (x[:600], y[:600]) if split == "train" else (x, y)

    monkeypatch.setattr(data, "load", small_train)
    namespace = {}
    exec(compile(blocks[0], "README.md", "exec"), namespace)
    engine, keras_accuracy = map(float, re.search(r"accuracy: (\S+) (\S+)", capsys.readouterr().out).groups())
    assert engine == keras_accuracy and engine > 0.5
    exec(compile(blocks[1], "README.md", "exec"), namespace)
    mask = pruning.load_mask(tmp_path / "mask.npz", namespace["model"])
    for layer in ("fc1", "fc2", "fc3"):
        kernel = namespace["net"].get_layer(layer).kernel.numpy()
        assert np.all(kernel[~mask[f"{layer}/kernel"]] == 0.0)
