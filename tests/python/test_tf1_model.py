"""A TF1 Estimator-style wide & deep model_fn, ported (tf1_model.py),
trained by 4 worker processes against one server: warm-started from a
TensorFlow checkpoint (written by the tf_checkpoint fixture), it converges,
every step counts, the chief's checkpoints are TensorFlow's and restore the
model, and its variables, collections and regularization losses are
TensorFlow's."""

import glob
import json
import math
import pathlib
import subprocess
import sys

import numpy as np

import varscope as vs

import tf1_model
import tf_checkpoint

MODEL = str(pathlib.Path(__file__).resolve().parent / "tf1_model.py")
WORKERS, STEPS = 4, 250


def write_pretrained(directory):
    """A checkpoint of a TensorFlow model trained under "pretrained/" (its
    embeddings partitioned in two, saved as slices), as TensorFlow's Saver
    writes it, with its state file."""
    rng = np.random.default_rng(7)
    truth = np.random.default_rng(1234).normal(size=tf1_model.VOCAB)
    half = tf1_model.VOCAB // 2
    embeddings = rng.normal(
        scale=0.1, size=[tf1_model.VOCAB, tf1_model.EMBEDDING_DIM]).astype(
        np.float32)
    tf_checkpoint.write_checkpoint(str(directory / "model.ckpt-8000"), [
        ("global_step", np.array(8000, np.int64)),
        ("pretrained/embeddings", list(embeddings.shape),
         [((0, 0), embeddings[:half]), ((half, 0), embeddings[half:])]),
        ("pretrained/other", np.zeros([2], np.float32)),
        ("pretrained/wide/bias", np.zeros([1], np.float32)),
        ("pretrained/wide/weights",
         (2 * truth[:, None]).astype(np.float32))])
    tf_checkpoint.write_state(str(directory), ["model.ckpt-8000"])


def test_four_workers_train_the_ported_model(server, child_env, tmp_path):
    pretrained, model_dir = tmp_path / "pretrained", tmp_path / "model"
    pretrained.mkdir()
    model_dir.mkdir()
    write_pretrained(pretrained)
    workers = [subprocess.Popen(
        [sys.executable, MODEL, server.address, str(w), str(STEPS),
         str(model_dir), str(pretrained)],
        env=child_env, stdout=subprocess.PIPE, text=True)
        for w in range(WORKERS)]
    results = []
    for w in workers:
        out, _ = w.communicate(timeout=300)
        assert w.returncode == 0
        results.append(json.loads(out))
    assert vs.train.global_step() == WORKERS * STEPS
    for result in results:
        # Warm-started: the first step starts below an untrained model's
        # log(2).
        assert result["first_loss"] < 0.6 * math.log(2), results
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

    # The chief's checkpoints: the last KEEP of them, TensorFlow's files,
    # the partitioned embeddings saved as one tensor.
    latest = vs.train.latest_checkpoint(str(model_dir))
    state = vs.train.get_checkpoint_state(str(model_dir))
    assert state.all_model_checkpoint_paths[-1] == latest
    assert len(state.all_model_checkpoint_paths) == tf1_model.KEEP
    assert sorted(glob.glob(str(model_dir / "model.ckpt-*.index"))) == sorted(
        p + ".index" for p in state.all_model_checkpoint_paths)
    reader = vs.train.NewCheckpointReader(latest)
    saved_step = int(reader.get_tensor("global_step"))
    # The step was read when the save began; other workers went on.
    assert saved_step >= int(latest.rsplit("-", 1)[1])
    assert reader.get_variable_to_shape_map()[
        "wide_deep/deep/embeddings"] == [tf1_model.VOCAB,
                                         tf1_model.EMBEDDING_DIM]

    # Restored, the server holds the checkpoint's model.
    vs.train.Saver().restore(None, latest)
    assert vs.train.global_step() == saved_step
    with vs.variable_scope("wide_deep/deep", reuse=True):
        emb = vs.get_variable(
            "embeddings", [tf1_model.VOCAB, tf1_model.EMBEDDING_DIM],
            partitioner=vs.fixed_size_partitioner(tf1_model.PARTS))
    np.testing.assert_array_equal(
        np.concatenate([part.read() for part in emb]),
        reader.get_tensor("wide_deep/deep/embeddings"))
    assert tf1_model.evaluate(2000, {"learning_rate": 0.5}) >= 0.9
