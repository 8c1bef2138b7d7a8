"""Training recipes of the zoo models: everything ``python -m pruning train NAME`` needs."""

MNIST = {"scale": 1 / 255, "mean": [0.1307], "std": [0.3081]}
FASHION = {"scale": 1 / 255, "mean": [0.2860], "std": [0.3530]}
CIFAR = {"scale": 1 / 255, "mean": [0.4914, 0.4822, 0.4465], "std": [0.2470, 0.2435, 0.2616]}

_LENET300 = {"architecture": "lenet300", "init": "glorot_normal", "optimizer": "adam", "lr": 1.2e-3,
             "schedule": "constant", "batch_size": 60, "epochs": 20, "augmentation": "none",
             "weight_decay": 0.0, "early_fraction": 0.01}

RECIPES = {
    "mnist-lenet300-torch": {**_LENET300, "framework": "torch", "dataset": "mnist", "preprocessing": MNIST,
                             "seed": 0, "source": "Frankle & Carbin 2019 (LeNet-300-100: Adam 1.2e-3, batch 60)"},
    "fmnist-lenet300-torch": {**_LENET300, "framework": "torch", "dataset": "fashion_mnist",
                              "preprocessing": FASHION, "seed": 0,
                              "source": "Frankle & Carbin 2019 recipe on Fashion-MNIST"},
    "mnist-lenet5-torch": {"framework": "torch", "dataset": "mnist", "architecture": "lenet5",
                           "preprocessing": MNIST, "init": "glorot_normal", "optimizer": "adam", "lr": 1e-3,
                           "schedule": "constant", "batch_size": 64, "epochs": 10, "augmentation": "none",
                           "weight_decay": 0.0, "seed": 0, "source": "LeNet-5 style CNN, Adam"},
    "cifar10-conv4-torch": {"framework": "torch", "dataset": "cifar10", "architecture": "conv4",
                            "preprocessing": CIFAR, "init": "glorot_normal", "optimizer": "adam", "lr": 3e-4,
                            "schedule": "constant", "batch_size": 60, "epochs": 7, "augmentation": "none",
                            "weight_decay": 0.0, "seed": 0, "early_fraction": 0.01,
                            "source": "Frankle & Carbin 2019 (Conv-4: Adam 3e-4, batch 60), 7 epochs (a CPU budget)"},
    "cifar10-resnet20-torch": {"framework": "torch", "dataset": "cifar10", "architecture": "resnet20",
                               "preprocessing": CIFAR, "init": "he_normal", "optimizer": "sgd", "lr": 0.1,
                               "momentum": 0.9, "weight_decay": 1e-4, "schedule": "cosine",
                               "batch_size": 128, "epochs": 15, "augmentation": "random crop (pad 4) + flip",
                               "seed": 0,
                               "source": "He et al. 2016 (SGD 0.1, momentum 0.9, wd 1e-4), 15 cosine epochs "
                                         "(a CPU budget)"},
}

# Keras twins share θ0 exactly: train_keras.py converts the PyTorch twin's seeded θ0 (``twin``).
_KERAS_ADAM = {"optimizer": "adam", "adam_epsilon": 1e-8}  # PyTorch's epsilon, so the twins match
RECIPES |= {
    "mnist-lenet300-keras": {**RECIPES["mnist-lenet300-torch"], **_KERAS_ADAM, "framework": "keras",
                             "twin": "mnist-lenet300-torch"},
    "fmnist-lenet300-keras": {**RECIPES["fmnist-lenet300-torch"], **_KERAS_ADAM, "framework": "keras",
                              "twin": "fmnist-lenet300-torch", "validation_split": 0.1, "early_stopping_patience": 5,
                              "source": "Frankle & Carbin 2019 recipe on Fashion-MNIST; early stopping on a "
                                        "10% validation split (best validation accuracy, patience 5)"},
    "cifar10-conv4-keras": {**RECIPES["cifar10-conv4-torch"], **_KERAS_ADAM, "framework": "keras",
                            "twin": "cifar10-conv4-torch", "epochs": 8, "augmentation": "horizontal flip",
                            "source": "Frankle & Carbin 2019 (Conv-4: Adam 3e-4, batch 60), 8 epochs (a CPU budget) "
                                      "with horizontal flips: without them, 7 epochs reached only 0.739",
                            "early_fraction": 0},  # θk of Conv-4 ships with the PyTorch twin: pretrained/ < 80 MB
    "mnist-conv-keras": {"framework": "keras", "dataset": "mnist", "architecture": "tfmot_conv",
                         "preprocessing": {"scale": 1 / 255, "mean": [0.0], "std": [1.0]},
                         "init": "glorot_uniform", "optimizer": "adam", "lr": 1e-3, "adam_epsilon": 1e-7,
                         "schedule": "constant", "batch_size": 32, "epochs": 4, "validation_split": 0.1,
                         "augmentation": "none", "weight_decay": 0.0, "seed": 0,
                         "source": "TF Model Optimization pruning tutorial (Keras defaults: Adam, batch 32, "
                                   "4 epochs, validation_split 0.1, pixels / 255)"},
}
