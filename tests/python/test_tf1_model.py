"""A TF1 Estimator-style wide & deep model_fn, ported (tf1_model.py),
trained by 4 worker processes against one server: it converges, every step
counts, and its variables, collections and regularization losses are
TensorFlow's."""

import json
import pathlib
import subprocess
import sys

import varscope as vs

import tf1_model

MODEL = str(pathlib.Path(__file__).resolve().parent / "tf1_model.py")
WORKERS, STEPS = 4, 250


def test_four_workers_train_the_ported_model(server, child_env):
    workers = [subprocess.Popen(
        [sys.executable, MODEL, server.address, str(w), str(STEPS)],
        env=child_env, stdout=subprocess.PIPE, text=True)
        for w in range(WORKERS)]
    results = []
    for w in workers:
        out, _ = w.communicate(timeout=240)
        assert w.returncode == 0
        results.append(json.loads(out))
    assert vs.train.global_step() == WORKERS * STEPS
    # Each worker's own 250 steps alone get below 0.15 (0.69 untrained),
    # whatever the others did meanwhile.
    for result in results:
        assert result["last_loss"] < 0.3, results
    accuracy = tf1_model.evaluate(2000, {"learning_rate": 0.5})
    assert accuracy >= 0.9, accuracy

    # Evaluating ran the model_fn here: this process's own registrations.
    assert [loss.name for loss in vs.get_collection(
        vs.GraphKeys.REGULARIZATION_LOSSES)] == [
        "wide_deep/deep/dense/kernel/Regularizer/l2_regularizer:0",
        "wide_deep/deep/dense_1/kernel/Regularizer/l2_regularizer:0"]
    assert vs.losses.get_regularization_loss() > 0
    # The server's collections, as any worker sees them.
    trainable = ["wide_deep/deep/dense/bias:0", "wide_deep/deep/dense/kernel:0",
                 "wide_deep/deep/dense_1/bias:0",
                 "wide_deep/deep/dense_1/kernel:0"] + [
        "wide_deep/deep/embeddings/part_%d:0" % p for p in range(3)] + [
        "wide_deep/wide/bias:0", "wide_deep/wide/weights:0"]
    assert [v.name for v in vs.trainable_variables()] == trainable
    assert [v.name for v in vs.global_variables("wide_deep/wide/")] == [
        "wide_deep/wide/bias:0", "wide_deep/wide/bias/Adagrad:0",
        "wide_deep/wide/weights:0", "wide_deep/wide/weights/Adagrad:0"]
    assert [v.name for v in vs.get_collection(vs.GraphKeys.GLOBAL_STEP)] == [
        "global_step:0"]
