"""Training: the zoo's own training apart from the retraining backend the explorer's Retrain tab uses.

recipes.py       how each zoo model is trained (optimiser, epochs, seed, augmentation)
train_torch.py   PyTorch training glue: train_zoo_model, and train_masked (pruned weights held at 0)
train_keras.py   the same for Keras
zoo_training.py  what training a zoo model involves in either framework: its start and its model.json
retrain.py       the retraining backend, framework-free: lottery-ticket rewinding, IMP, gradual and
                 dynamic pruning (it finds the training glue through the model's adapter)
supermask.py     learned supermasks (edge-popup): scores trained with θ0 frozen, framework-free;
                 supermask_torch.py / supermask_keras.py are its glue (named by the adapters),
                 supermask_files.py the masks shipped in pretrained/<name>/supermasks/, and
                 supermask_zoo.py the command that generates them
"""
