"""Readers of users' model files, one module per format (each refuses what it cannot read safely).

safetensors.py  a zoo architecture's state dict, matched by keys and shapes
pt2.py          a torch.export program
keras.py        a Keras 3 model (safe mode)
common.py       one-line failure messages, quiet loading
``pruning.uploads.byo`` decides the format of a file and calls one of them.
"""
