"""Keras glue of the learned supermask (edge-popup, Ramanujan et al. 2020; see supermask.py):
the forward pass with θ0 * h(|s|) through ``stateless_call``, and the optimiser loop over the
scores s alone.  Weight decay is added to the gradient (L2, as PyTorch's SGD and Adam do), not
Keras's decoupled ``weight_decay``, so both frameworks follow the same recipe."""

import numpy as np

from ..models.keras_model import keras, load, named_variables, tf, to_input


def _popup(k: int):
    """h: 1 for the k largest entries of a tensor, 0 elsewhere; gradient straight through."""

    @tf.custom_gradient
    def h(a):
        flat = tf.reshape(a, [-1])
        top = tf.math.top_k(flat, k=k, sorted=False).indices
        keep = tf.scatter_nd(top[:, None], tf.ones([k], a.dtype), tf.shape(flat, out_type=top.dtype))
        return tf.reshape(keep, tf.shape(a)), lambda grad: grad

    return h


def _optimizer(hyper, steps):
    lr = hyper["lr"]
    if hyper["schedule"] == "cosine":
        lr = keras.optimizers.schedules.CosineDecay(lr, steps)
    if hyper["optimizer"] == "adam":
        return keras.optimizers.Adam(lr)
    return keras.optimizers.SGD(lr, momentum=hyper["momentum"])


def train_scores(model, scores: dict, kept: dict, x, y, *, epochs, seed, hyper, on_epoch=None) -> dict:
    """Train ``scores`` (name -> native numpy array) on (x, y) with θ0 frozen; ``kept``: name ->
    weights kept per layer.  ``on_epoch(epoch, mean loss, scores as numpy)`` after each epoch.
    Returns the trained scores as numpy arrays."""
    net = load(model.files["init"])
    names = {id(v): n for n, v in named_variables(net).items()}
    trainable = [names[id(v)] for v in net.trainable_variables]
    fixed = [names[id(v)] for v in net.non_trainable_variables]
    values = {n: tf.constant(v) for n, v in model.states["init"].items()}
    s = {n: tf.Variable(np.array(v, dtype=np.float32), name=n.replace("/", "_")) for n, v in scores.items()}
    popups = {n: _popup(int(kept[n])) for n in s}
    batch, decay = int(hyper["batch_size"]), float(hyper["weight_decay"])
    steps = -(-len(x) // batch)
    opt = _optimizer(hyper, epochs * steps)
    svars = list(s.values())

    @tf.function
    def step(xb, yb):
        with tf.GradientTape() as tape:
            vals = dict(values)
            for n, score in s.items():
                vals[n] = values[n] * popups[n](tf.abs(score))
            logits = net.stateless_call([vals[n] for n in trainable], [vals[n] for n in fixed], xb,
                                        training=False)[0]
            loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(yb, logits))
        grads = tape.gradient(loss, svars)
        opt.apply_gradients([(g + decay * v, v) for g, v in zip(grads, svars, strict=True)])
        return loss

    rng = np.random.default_rng([seed, 18])
    labels = np.asarray(y, dtype=np.int64)
    for epoch in range(1, epochs + 1):
        order = rng.permutation(len(x))
        losses = []
        for i in range(0, len(x), batch):
            idx = np.sort(order[i:i + batch])
            losses.append(float(step(tf.constant(to_input(x[idx], model.input_shape)), tf.constant(labels[idx]))))
        if on_epoch:
            on_epoch(epoch, float(np.mean(losses)), {n: v.numpy().copy() for n, v in s.items()})
    return {n: v.numpy().copy() for n, v in s.items()}
