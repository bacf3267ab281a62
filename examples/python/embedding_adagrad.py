#!/usr/bin/python3
"""Sparse training: an embedding + logistic-regression model, Adagrad on the
server, four worker processes pushing sparse gradients.

Each example is a bag of token ids; its label says whether the tokens'
hidden scores sum above zero. The model averages the tokens' embedding rows
and applies a logistic regression. Every step a worker gathers only the
embedding rows its batch uses (`sparse_read`), reads the dense weights
(`batch_read`), computes gradients with numpy, and sends them in one atomic
`apply_gradients`: IndexedSlices for the embedding (repeated tokens are
summed on the server, as TensorFlow does), dense arrays for the weights, and
the global step's increment. Adagrad's accumulators (`emb/Adagrad`, ...) live
next to the variables on the server.

    build/server/varscoped --listen=127.0.0.1:7070 --data-dir=/tmp/vs &
    PYTHONPATH=build/python /usr/bin/python3 \
        examples/python/embedding_adagrad.py 127.0.0.1:7070

Exits with status 1 unless the model reaches TARGET_ACCURACY on held-out
examples and the global step counts every worker step.
"""

import argparse
import multiprocessing
import sys
import time

import numpy as np

import varscope as vs

VOCABULARY = 1000
EMBEDDING_DIM = 8
TOKENS_PER_EXAMPLE = 5
NUM_WORKERS = 4
STEPS_PER_WORKER = 250
BATCH_SIZE = 64
LEARNING_RATE = 0.5
TARGET_ACCURACY = 0.9


def make_examples(n, seed):
    """`n` (token ids, label) examples; the hidden scores are fixed."""
    scores = np.random.default_rng(7).normal(size=VOCABULARY)
    ids = np.random.default_rng(seed).integers(
        0, VOCABULARY, size=(n, TOKENS_PER_EXAMPLE))
    labels = (scores[ids].sum(axis=1) > 0).astype(np.float64)
    return ids, labels


def model():
    """The model's variables: safe to call in every worker."""
    with vs.variable_scope("model", reuse=vs.AUTO_REUSE):
        emb = vs.get_variable(
            "emb", shape=[VOCABULARY, EMBEDDING_DIM], dtype=vs.float64,
            initializer=vs.random_normal_initializer(stddev=0.1, seed=1))
        w = vs.get_variable("w", shape=[EMBEDDING_DIM, 1], dtype=vs.float64,
                            initializer=vs.random_normal_initializer(
                                stddev=0.1, seed=2))
        b = vs.get_variable("b", shape=[], dtype=vs.float64,
                            initializer=vs.zeros_initializer())
    return emb, w, b


def predict(rows, w, b):
    """P(label 1) of examples whose tokens' embedding rows are `rows`
    ([n, tokens, dim])."""
    hidden = rows.mean(axis=1)
    return 1 / (1 + np.exp(-(hidden @ w + b))), hidden


def train(address, worker):
    vs.connect(address)
    emb, w, b = model()
    opt = vs.train.AdagradOptimizer(LEARNING_RATE)
    step = vs.get_or_create_global_step()
    ids, labels = make_examples(STEPS_PER_WORKER * BATCH_SIZE, seed=worker)
    for i in range(STEPS_PER_WORKER):
        batch = slice(i * BATCH_SIZE, (i + 1) * BATCH_SIZE)
        batch_ids, y = ids[batch], labels[batch]
        # Only the rows this batch uses, and the dense weights.
        unique, local = np.unique(batch_ids, return_inverse=True)
        rows = emb.sparse_read(unique)[local.reshape(batch_ids.shape)]
        values = vs.batch_read([w, b])
        p, hidden = predict(rows, values["model/w"], values["model/b"])
        # Gradients of the mean logistic loss.
        dlogit = (p[:, 0] - y) / BATCH_SIZE
        dw = hidden.T @ dlogit[:, None]
        db = dlogit.sum()
        dhidden = dlogit[:, None] @ values["model/w"].T
        drows = np.repeat(dhidden / TOKENS_PER_EXAMPLE, TOKENS_PER_EXAMPLE,
                          axis=0)
        opt.apply_gradients(
            [(vs.IndexedSlices(drows, batch_ids.reshape(-1)), emb),
             (dw, w), (db, b)],
            global_step=step)


def evaluate():
    emb, w, b = model()
    ids, labels = make_examples(5000, seed=1000)
    values = vs.batch_read([emb, w, b])
    p, _ = predict(values["model/emb"][ids], values["model/w"],
                   values["model/b"])
    return float(((p[:, 0] > 0.5) == labels).mean())


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("address", help="HOST:PORT of varscoped")
    args = parser.parse_args()
    vs.connect(args.address)
    start_step = vs.global_step()
    before = evaluate()
    start = time.time()
    workers = [multiprocessing.Process(target=train, args=(args.address, k))
               for k in range(NUM_WORKERS)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    seconds = time.time() - start
    accuracy = evaluate()
    steps = vs.global_step() - start_step
    print("%d workers x %d sparse Adagrad steps in %.1f s; held-out accuracy "
          "%.3f (%.3f before); global step +%d" % (
              NUM_WORKERS, STEPS_PER_WORKER, seconds, accuracy, before,
              steps))
    if any(worker.exitcode != 0 for worker in workers):
        sys.exit("a worker failed")
    if steps != NUM_WORKERS * STEPS_PER_WORKER:
        sys.exit("the global step counted %d steps" % steps)
    if accuracy < TARGET_ACCURACY:
        sys.exit("accuracy %.3f is below the target %.2f" % (
            accuracy, TARGET_ACCURACY))


if __name__ == "__main__":
    main()
