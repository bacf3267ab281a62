#!/usr/bin/python3
"""Estimator-style asynchronous training of a linear model with Varscope.

Four worker processes share one varscoped server. Each calls the same
`model_fn` to get the model's variables, then trains on its own shard of a
synthetic linear-regression data set with known true weights, pushing its
gradient steps with `assign_add` (atomic on the server) and counting them in
the global step.

First it shows the failure this example is about: a model_fn written with a
plain get_variable (no reuse) works once, but the second call, as an
Estimator makes for evaluation after training, raises TensorFlow's
"already exists, disallowed" ValueError. The fix is to open the model's
variable scope with reuse=AUTO_REUSE.

    build/server/varscoped --listen=127.0.0.1:7070 --data-dir=/tmp/vs &
    PYTHONPATH=build/python /usr/bin/python3 \
        examples/python/estimator_linear_regression.py 127.0.0.1:7070

Without an address it finds the servers as every Varscope client does:
$VARSCOPE_SERVER, else TF_CONFIG's cluster.ps (as a TensorFlow worker),
else 127.0.0.1:7070.

Exits with status 1 if training does not converge or the global step does
not count every step of every worker exactly.
"""

import argparse
import collections
import multiprocessing
import os
import sys
import time

import numpy as np

import varscope as vs

NUM_WORKERS = 4
NUM_FEATURES = 10
NUM_EXAMPLES = 4000
STEPS_PER_WORKER = 150
BATCH_SIZE = 32
LEARNING_RATE = 0.1
# Largest allowed error of a learned weight or bias.
TOLERANCE = 0.05

# What model_fn returns: the model's variables.
EstimatorSpec = collections.namedtuple("EstimatorSpec", ["weights", "bias"])


def make_data():
    """The data set, its true weights and bias (the same in every process)."""
    rng = np.random.default_rng(2024)
    true_weights = rng.normal(size=(NUM_FEATURES, 1)).astype(np.float32)
    true_bias = np.float32(0.5)
    features = rng.normal(size=(NUM_EXAMPLES, NUM_FEATURES)).astype(np.float32)
    noise = 0.01 * rng.normal(size=(NUM_EXAMPLES, 1)).astype(np.float32)
    labels = features @ true_weights + true_bias + noise
    return features, labels, true_weights, true_bias


def model_fn(features, labels):
    """The linear model. Safe to call any number of times, in any process."""
    with vs.variable_scope("linear", reuse=vs.AUTO_REUSE):
        weights = vs.get_variable("weights", shape=[features.shape[1], 1],
                                  initializer=vs.zeros_initializer())
        bias = vs.get_variable("bias", shape=[1],
                               initializer=vs.zeros_initializer())
    return EstimatorSpec(weights, bias)


def predict(spec, features):
    """The model's predictions with the variables' current values."""
    return features @ spec.weights.read() + spec.bias.read()


def naive_model_fn(features, labels):
    """The seed article's model_fn: get_variable without reuse."""
    weights = vs.get_variable("weights", shape=[features.shape[1], 1],
                              initializer=vs.zeros_initializer())
    bias = vs.get_variable("bias", shape=[1],
                           initializer=vs.zeros_initializer())
    return EstimatorSpec(weights, bias)


def show_failure_and_fix(features, labels):
    """Calls both model_fns twice (train, then evaluate)."""
    with vs.variable_scope("naive"):
        naive_model_fn(features, labels)
        try:
            naive_model_fn(features, labels)
            raise AssertionError("the second naive call should have failed")
        except ValueError as e:
            print("naive model_fn, second call: ValueError: %s" % e)
    first = model_fn(features, labels)
    second = model_fn(features, labels)
    assert first.weights.name == second.weights.name
    print("model_fn with AUTO_REUSE, second call: shares %s and %s" %
          (second.weights.name, second.bias.name))


def train_worker(address, run, worker):
    """One worker: asynchronous SGD on its shard of the data."""
    vs.connect(address)
    features, labels, _, _ = make_data()
    features = features[worker::NUM_WORKERS]
    labels = labels[worker::NUM_WORKERS]
    rng = np.random.default_rng(worker)
    with vs.variable_scope(run):
        spec = model_fn(features, labels)
    for _ in range(STEPS_PER_WORKER):
        batch = rng.integers(0, len(features), BATCH_SIZE)
        x, y = features[batch], labels[batch]
        error = predict(spec, x) - y
        spec.weights.assign_add(-LEARNING_RATE * x.T @ error / BATCH_SIZE)
        spec.bias.assign_add(-LEARNING_RATE * error.mean(axis=0))
        vs.train.increment_global_step()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "address", nargs="?",
        help="HOST:PORT of varscoped, or a cluster's shards comma-separated "
             "(default: $VARSCOPE_SERVER, else TF_CONFIG's cluster.ps, else "
             "127.0.0.1:7070)")
    args = parser.parse_args()
    start = time.monotonic()
    vs.connect(args.address)
    # Every run gets its own scope, so runs against one server do not share
    # (or collide on) variables.
    run = "linreg_%d_%d" % (os.getpid(), time.time())
    features, labels, true_weights, true_bias = make_data()
    with vs.variable_scope(run):
        show_failure_and_fix(features, labels)
    first_step = vs.global_step()

    context = multiprocessing.get_context("spawn")  # gRPC does not fork
    workers = [context.Process(target=train_worker,
                               args=(args.address, run, i))
               for i in range(NUM_WORKERS)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    if any(w.exitcode != 0 for w in workers):
        print("FAILED: worker exit codes %s" % [w.exitcode for w in workers])
        return 1

    with vs.variable_scope(run):
        spec = model_fn(features, labels)
    weight_error = np.abs(spec.weights.read() - true_weights).max()
    bias_error = abs(float(spec.bias.read()[0]) - true_bias)
    mse = float(np.mean((predict(spec, features) - labels) ** 2))
    steps = vs.global_step() - first_step
    expected_steps = NUM_WORKERS * STEPS_PER_WORKER
    print("trained %d workers x %d steps in %.1f s: max weight error %.4f, "
          "bias error %.4f, mse %.5f; global step advanced by %d (expected "
          "%d)" % (NUM_WORKERS, STEPS_PER_WORKER, time.monotonic() - start,
                   weight_error, bias_error, mse, steps, expected_steps))
    ok = True
    if max(weight_error, bias_error) > TOLERANCE:
        print("FAILED: did not converge to within %g of the true weights" %
              TOLERANCE)
        ok = False
    if steps != expected_steps:
        print("FAILED: the global step lost or invented steps")
        ok = False
    if ok:
        print("OK")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
