"""A TensorFlow 1 Estimator-style wide & deep model_fn ported to Varscope,
and a worker training it: `tf1_model.py ADDRESS WORKER STEPS MODEL_DIR
WARM_START_FROM`, which prints {"first_loss": ..., "last_loss": ...} as JSON
when done.

Ported as a TF1 user would: `tf.` becomes `vs.`, variables come from
get_variable under one AUTO_REUSE scope (so every worker shares them), the
embeddings are partitioned with TF1's default "mod" lookup, the dense layers
are `variable_scope(None, default_name="dense")` scopes with a scope-level
l2_regularizer, and a custom getter tracks the model's variables. What
TensorFlow computes in the graph is numpy here (forward and backward), and
train_op is one server-side Adagrad step with the global step, at an
exponentially decaying learning rate. As the Estimator does, the variables
are warm-started from a TensorFlow checkpoint (WarmStartSettings: after the
model_fn made them, before the first step), and the chief (worker 0) saves a
checkpoint every SAVE_EVERY of its steps and at the end (the
CheckpointSaverHook).
"""

import collections
import json
import sys

import numpy as np

import varscope as vs

VOCAB = 60
IDS_PER_EXAMPLE = 3
EMBEDDING_DIM = 6
HIDDEN = 8
PARTS = 3
L2 = 1e-4
BATCH = 32
DECAY_STEPS, DECAY_RATE = 1000, 0.5
SAVE_EVERY, KEEP = 100, 2
# The warm start: a TensorFlow model trained under "pretrained/" had the
# wide part and the embeddings (one tensor, saved in slices) this one has.
WARM_START = {"pretrained/wide/": "wide_deep/wide/",
              "pretrained/embeddings": "wide_deep/deep/embeddings"}
TRAIN, EVAL = "train", "eval"

EstimatorSpec = collections.namedtuple(
    "EstimatorSpec", ["mode", "predictions", "loss", "train_op"])


def input_fn(seed, n):
    """(features, labels): IDS_PER_EXAMPLE ids per example; the label says
    whether their (fixed, hidden) weights sum to more than 0."""
    truth = np.random.default_rng(1234).normal(size=VOCAB)
    ids = np.random.default_rng(seed).integers(0, VOCAB,
                                               (n, IDS_PER_EXAMPLE))
    return ids, (truth[ids].sum(axis=1) > 0).astype(np.float64)


def sparse(ids):
    """The ids as the SparseTensor a TF1 input pipeline would give."""
    rows = np.repeat(np.arange(len(ids)), IDS_PER_EXAMPLE)
    cols = np.tile(np.arange(IDS_PER_EXAMPLE), len(ids))
    return vs.SparseTensor(np.stack([rows, cols], axis=1), ids.reshape(-1),
                           ids.shape)


def dense(inputs, units, seed):
    """The variables of a dense layer as in TF1 code: its own default_name
    scope (dense, dense_1, ...), the scope's regularizer on the kernel
    only."""
    with vs.variable_scope(None, default_name="dense",
                           regularizer=vs.l2_regularizer(L2)):
        kernel = vs.get_variable(
            "kernel", [inputs, units],
            initializer=vs.glorot_uniform_initializer(seed=seed))
        bias = vs.get_variable("bias", [units],
                               initializer=vs.zeros_initializer(),
                               regularizer=vs.no_regularizer)
    return kernel, bias


def model_fn(features, labels, mode, params):
    """TF1's model_fn(features, labels, mode, params) -> EstimatorSpec."""
    tracked = {}

    def tracking_getter(getter, name, *args, **kwargs):
        variable = getter(name, *args, **kwargs)
        tracked[name] = variable
        return variable

    sp_ids = sparse(features)
    with vs.variable_scope("wide_deep", reuse=vs.AUTO_REUSE,
                           custom_getter=tracking_getter):
        with vs.variable_scope("wide"):
            wide_w = vs.get_variable("weights", [VOCAB, 1],
                                     initializer=vs.zeros_initializer())
            wide_b = vs.get_variable("bias", [1],
                                     initializer=vs.zeros_initializer())
        with vs.variable_scope("deep"):
            emb = vs.get_variable(
                "embeddings", [VOCAB, EMBEDDING_DIM],
                initializer=vs.truncated_normal_initializer(stddev=0.1,
                                                            seed=1),
                partitioner=vs.fixed_size_partitioner(PARTS))
            e = vs.nn.embedding_lookup_sparse(emb, sp_ids, None,
                                              combiner="mean")
            layer1 = dense(EMBEDDING_DIM, HIDDEN, seed=2)
            layer2 = dense(HIDDEN, 1, seed=3)
    values = vs.batch_read([wide_b, *layer1, *layer2])
    k1, b1, k2, b2 = (values[v._shared_name] for v in (*layer1, *layer2))
    h = np.maximum(e @ k1 + b1, 0)
    logits = (vs.nn.embedding_lookup_sparse(wide_w, sp_ids, None,
                                            combiner="sum") +
              values[wide_b._shared_name] + h @ k2 + b2)[:, 0]
    probabilities = 1 / (1 + np.exp(-logits))
    if labels is None:
        return EstimatorSpec(mode, probabilities, None, None)
    loss = float(np.mean(np.logaddexp(0, logits) - labels * logits)) + \
        vs.losses.get_regularization_loss("wide_deep/")

    def train_op():
        # Backward pass (TensorFlow's gradients), then one atomic step.
        d_logits = ((probabilities - labels) / len(labels))[:, None]
        ids = features.reshape(-1)
        d_h = d_logits @ k2.T * (h > 0)
        d_e = np.repeat(d_h @ k1.T / IDS_PER_EXAMPLE, IDS_PER_EXAMPLE,
                        axis=0)
        grads = [
            (vs.IndexedSlices(np.repeat(d_logits, IDS_PER_EXAMPLE, axis=0),
                              ids), wide_w),
            (d_logits.sum(axis=0), wide_b),
            (e.T @ d_h + L2 * k1, layer1[0]), (d_h.sum(axis=0), layer1[1]),
            (h.T @ d_logits + L2 * k2, layer2[0]),
            (d_logits.sum(axis=0), layer2[1]),
        ]
        # "mod": id i is row i // PARTS of part i % PARTS, and its gradient
        # goes to that part, as TensorFlow's gradient of the lookup does.
        for p, part in enumerate(emb):
            mine = ids % PARTS == p
            if mine.any():
                grads.append((vs.IndexedSlices(d_e[mine], ids[mine] // PARTS),
                              part))
        assert set(tracked) == {v._shared_name for _, v in grads[:6]} | {
            emb.name}
        global_step = vs.train.get_or_create_global_step()
        learning_rate = vs.train.exponential_decay(
            params["learning_rate"], global_step, DECAY_STEPS, DECAY_RATE)
        vs.train.AdagradOptimizer(learning_rate).apply_gradients(
            grads, global_step=global_step)

    return EstimatorSpec(mode, probabilities, loss, train_op)


def checkpoint_saver_hook(model_dir, steps):
    """TF1's CheckpointSaverHook on the chief: a Saver of every variable,
    saving model_dir/model.ckpt-<global step> after every SAVE_EVERY steps
    of this worker and after its last one."""
    saver = vs.train.Saver(max_to_keep=KEEP)
    done = [0]

    def hook(spec):
        del spec  # The hook saves the variables, not the step's outputs.
        done[0] += 1
        if done[0] % SAVE_EVERY == 0 or done[0] == steps:
            saver.save(None, model_dir + "/model.ckpt",
                       global_step=vs.train.get_global_step())
    return hook


def train(worker, steps, params, hooks=()):
    """The Estimator's train loop over this worker's shard of the data,
    warm-started from params["warm_start_from"] (a checkpoint) if set;
    `hooks` are called with the step's EstimatorSpec after each step.
    Returns the first and last losses."""
    features, labels = input_fn(seed=worker, n=steps * BATCH)
    if params.get("warm_start_from"):
        model_fn(features[:BATCH], labels[:BATCH], TRAIN, params)
        vs.train.init_from_checkpoint(params["warm_start_from"], WARM_START)
    losses = []
    for step in range(steps):
        batch = slice(step * BATCH, (step + 1) * BATCH)
        spec = model_fn(features[batch], labels[batch], TRAIN, params)
        spec.train_op()
        losses.append(spec.loss)
        for hook in hooks:
            hook(spec)
    return losses[0], float(np.mean(losses[-10:]))


def evaluate(n, params):
    """Accuracy on held-out data."""
    features, labels = input_fn(seed=10_000, n=n)
    spec = model_fn(features, None, EVAL, params)
    return float(np.mean((spec.predictions > 0.5) == labels))


def main(address, worker, steps, model_dir, warm_start_from):
    vs.connect(address, timeout=120)
    worker, steps = int(worker), int(steps)
    hooks = [checkpoint_saver_hook(model_dir, steps)] if worker == 0 else []
    first, last = train(worker, steps, {"learning_rate": 0.5,
                                        "warm_start_from": warm_start_from},
                        hooks)
    print(json.dumps({"first_loss": first, "last_loss": last}))


if __name__ == "__main__":
    main(*sys.argv[1:])
