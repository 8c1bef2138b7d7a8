"""Loaded models behind one contract (adapter.py), and the zoo.

adapter.py       the Model protocol and the registry of adapters, keyed by framework
torch_model.py   PyTorch adapter (zoo models and .safetensors state dicts), torch_nets.py its networks,
                 torch_fast.py an exact fast path for sparse MLP heads
fast_chain.py    the exact rewrite of a pruned MLP chain that torch_fast.py and keras_fast.py run
keras_model.py   Keras adapter, keras_nets.py its networks, keras_callback.py MaskCallback for fine-tuning,
                 keras_fast.py the quicker evaluation of its MLP
pt2_model.py     torch.export programs (uploads)
zoo.py           pretrained/<name>/: the catalogue and load_model
export.py        export formats: the mask as .npz, a PyTorch mask dict, a pruned Keras model, shrunk
                 models (shrink.py plans, shrink_torch.py / shrink_keras.py build) and ONNX
                 (onnx_export.py; onnx_measure.py times dense vs pruned vs shrunk with onnxruntime)
Only the adapters import PyTorch or TensorFlow.
"""
