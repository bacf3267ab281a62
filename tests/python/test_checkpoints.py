"""TensorFlow checkpoints: Saver, latest_checkpoint, init_from_checkpoint and
the checkpoint readers, against files written from the format's
specification by tf_checkpoint.py."""

import os

import numpy as np
import pytest

import varscope as vs
from varscope import errors

import tf_checkpoint


def make_model():
    """Variables of every kind a checkpoint holds, with known values."""
    with vs.variable_scope("model"):
        w = vs.get_variable("dense/kernel", initializer=np.arange(
            6, dtype=np.float32).reshape(3, 2))
        b = vs.get_variable("dense/bias", initializer=np.array(
            [0.5, -1.5], np.float64))
        emb = vs.get_variable("emb", shape=[5, 2], dtype=vs.float32,
                              initializer=vs.zeros_initializer(),
                              partitioner=vs.fixed_size_partitioner(2))
    emb.assign(np.arange(10, dtype=np.float32).reshape(5, 2) / 4)
    step = vs.train.get_or_create_global_step()
    step.assign(42)
    return w, b, emb, step


@pytest.fixture
def ckpt(tmp_path):
    """A directory for checkpoints (tmp_path holds the server's data)."""
    path = tmp_path / "ckpt"
    path.mkdir()
    return path


def read_file(path):
    with open(path, "rb") as f:
        return f.read()


def test_saver_writes_the_bytes_tensorflow_writes(server, ckpt):
    w, b, emb, step = make_model()
    prefix = vs.train.Saver().save(None, str(ckpt / "model.ckpt"),
                                   global_step=step)
    assert prefix == str(ckpt / "model.ckpt-42")
    # TensorFlow's Saver writes the variables sorted by name, the parts of a
    # partitioned variable as slices of it, in one data file.
    emb_value = emb.read()
    expected = tf_checkpoint.write_checkpoint(str(ckpt / "expected"), [
        ("global_step", np.array(42, np.int64)),
        ("model/dense/bias", b.read()),
        ("model/dense/kernel", w.read()),
        ("model/emb", [5, 2], [([0, 0], emb_value[:3]),
                               ([3, 0], emb_value[3:])]),
    ])
    assert read_file(prefix + ".index") == expected[
        str(ckpt / "expected.index")]
    assert read_file(prefix + ".data-00000-of-00001") == expected[
        str(ckpt / "expected.data-00000-of-00001")]
    assert sorted(os.listdir(ckpt)) == [
        "checkpoint", "expected.data-00000-of-00001", "expected.index",
        "model.ckpt-42.data-00000-of-00001", "model.ckpt-42.index"]
    assert read_file(ckpt / "checkpoint").decode() == (
        'model_checkpoint_path: "%s"\nall_model_checkpoint_paths: "%s"\n'
        % (prefix, prefix))


def test_the_index_spans_blocks_when_large(server, ckpt):
    # Enough entries (with long names) for several 256 KiB index blocks.
    names = ["scope_%03d/%s" % (i, "v" * 900) for i in range(600)]
    values = {}
    with vs.batch_update() as batch:
        for i, name in enumerate(names):
            v = vs.get_variable(name, shape=[1], dtype=vs.int32,
                                initializer=vs.zeros_initializer())
            batch.assign(v, [i])
            values[name] = np.array([i], np.int32)
    prefix = vs.train.Saver().save(None, str(ckpt / "big"))
    expected = tf_checkpoint.write_checkpoint(
        str(ckpt / "expected"), sorted(values.items()))
    index = read_file(prefix + ".index")
    assert len(index) > 2 * tf_checkpoint.BLOCK_SIZE
    assert index == expected[str(ckpt / "expected.index")]
    assert vs.train.load_variable(prefix, names[123]).tolist() == [123]


def test_restore_assigns_every_variable(server, ckpt):
    w, b, emb, step = make_model()
    saver = vs.train.Saver()
    prefix = saver.save(None, str(ckpt / "ckpt"))
    saved = vs.batch_read(scope="")
    for v in (w, b, emb, step):
        v.assign(np.zeros(v.shape, v.dtype.as_numpy_dtype))
    saver.restore(None, prefix)
    assert vs.batch_read(scope="").keys() == saved.keys()
    for name, value in vs.batch_read(scope="").items():
        np.testing.assert_array_equal(value, saved[name])


def test_restore_checks_everything_before_assigning(server, ckpt):
    w, b, emb, step = make_model()
    prefix = vs.train.Saver([w, emb]).save(None, str(ckpt / "ckpt"))
    w.assign(np.ones([3, 2]))
    before = vs.batch_read(scope="")
    with pytest.raises(errors.NotFoundError) as e:
        vs.train.Saver([w, b]).restore(None, prefix)
    assert e.value.message.endswith(
        "Original error:\n\nKey model/dense/bias not found in checkpoint")
    with pytest.raises(errors.InvalidArgumentError) as e:
        vs.train.Saver({"model/dense/kernel": b}).restore(None, prefix)
    assert e.value.message == (
        "tensor_name = model/dense/kernel; expected dtype float64 does not "
        "equal original dtype float32")
    with pytest.raises(ValueError, match="The passed save_path is not a "
                                         "valid checkpoint: .*nothing"):
        vs.train.Saver().restore(None, str(ckpt / "nothing"))
    for name, value in vs.batch_read(scope="").items():
        np.testing.assert_array_equal(value, before[name])
    # A part alone restores from its slice of the whole.
    emb.assign(np.zeros([5, 2]))
    vs.train.Saver([emb[1]]).restore(None, prefix)
    np.testing.assert_array_equal(emb[1].read(),
                                  np.arange(6, 10).reshape(2, 2) / 4)
    np.testing.assert_array_equal(emb[0].read(), np.zeros([3, 2]))


def test_a_damaged_checkpoint_is_refused(server, ckpt):
    w, *_ = make_model()
    prefix = vs.train.Saver([w]).save(None, str(ckpt / "ckpt"))
    data = prefix + ".data-00000-of-00001"
    contents = bytearray(read_file(data))
    contents[3] ^= 1
    with open(data, "wb") as f:
        f.write(contents)
    with pytest.raises(errors.DataLossError, match="Checksum does not match"):
        vs.train.Saver([w]).restore(None, prefix)
    with open(prefix + ".index", "r+b") as f:
        f.truncate(20)
    with pytest.raises(errors.DataLossError,
                       match="Checkpoint index .* is damaged"):
        vs.train.load_checkpoint(prefix)


def test_max_to_keep_and_latest_checkpoint(server, ckpt):
    make_model()
    assert vs.train.latest_checkpoint(str(ckpt)) is None
    saver = vs.train.Saver(max_to_keep=2)
    prefixes = [saver.save(None, str(ckpt / "m"), global_step=i)
                for i in range(4)]
    assert saver.last_checkpoints == prefixes[2:]
    assert sorted(os.listdir(ckpt)) == [
        "checkpoint", "m-2.data-00000-of-00001", "m-2.index",
        "m-3.data-00000-of-00001", "m-3.index"]
    assert vs.train.latest_checkpoint(str(ckpt)) == prefixes[3]
    state = vs.train.get_checkpoint_state(str(ckpt))
    assert state.all_model_checkpoint_paths == prefixes[2:]
    # A new Saver takes up the old ones and prunes them as well.
    again = vs.train.Saver(max_to_keep=2)
    again.recover_last_checkpoints(state.all_model_checkpoint_paths)
    again.save(None, str(ckpt / "m"), global_step=4)
    assert not os.path.exists(prefixes[2] + ".index")
    # The state file names a checkpoint whose files are gone: None.
    os.remove(str(ckpt / "m-4.index"))
    assert vs.train.latest_checkpoint(str(ckpt)) is None


def test_relative_paths_as_tensorflow_writes_them(server, ckpt):
    make_model()
    saver = vs.train.Saver(save_relative_paths=True)
    prefix = saver.save(None, str(ckpt / "m"), global_step=7)
    assert read_file(ckpt / "checkpoint").decode() == (
        'model_checkpoint_path: "m-7"\nall_model_checkpoint_paths: "m-7"\n')
    assert vs.train.latest_checkpoint(str(ckpt)) == prefix
    # A state file as TensorFlow writes it.
    tf_checkpoint.write_state(str(ckpt), ["m-7"])
    assert vs.train.latest_checkpoint(str(ckpt)) == prefix


def test_reads_tensorflow_checkpoints_of_several_data_files(server, ckpt):
    emb_value = np.arange(24, dtype=np.float32).reshape(6, 4)
    files = tf_checkpoint.write_checkpoint(
        str(ckpt / "tf-100"),
        [("a/w", np.array([[1.5, 2.5]], np.float32)),
         ("a/emb", [6, 4], [([0, 0], emb_value[:2]), ([2, 0], emb_value[2:4]),
                            ([4, 0], emb_value[4:])]),
         ("count", np.array(7, np.int64))],
        num_shards=2, shard_of=lambda name: 1 if name == "a/emb" else 0,
        block_size=64)
    assert len(files) == 3
    tf_checkpoint.write_state(str(ckpt), ["tf-100"])
    assert vs.train.list_variables(str(ckpt)) == [
        ("a/emb", [6, 4]), ("a/w", [1, 2]), ("count", [])]
    np.testing.assert_array_equal(
        vs.train.load_variable(str(ckpt), "a/emb"), emb_value)
    assert vs.train.load_variable(str(ckpt), "count") == 7
    reader = vs.train.load_checkpoint(str(ckpt))
    assert reader.get_variable_to_dtype_map()["a/w"] == vs.float32
    with pytest.raises(errors.NotFoundError,
                       match="Key a/b not found in checkpoint"):
        reader.get_tensor("a/b")


def test_save_and_restore_a_cluster(shards, tmp_path):
    with vs.variable_scope("m"):
        ws = [vs.get_variable("w%d" % i, shape=[2, 2],
                              initializer=vs.ones_initializer())
              for i in range(12)]
    for i, w in enumerate(ws):
        w.assign(np.full([2, 2], i))
    shard_of = vs.connect(cluster=[s.address for s in shards])._connection()
    assert {shard_of.shard_of(w._shared_name) for w in ws} == {0, 1}
    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    saver = vs.train.Saver()
    prefix = saver.save(None, str(ckpt / "model"))
    assert [n for n, _ in vs.train.list_variables(str(ckpt))] == [
        "m/w%d" % i for i in sorted(range(12), key=str)]
    for w in ws:
        w.assign(np.zeros([2, 2]))
    saver.restore(None, prefix)
    for i, w in enumerate(ws):
        np.testing.assert_array_equal(w.read(), np.full([2, 2], i))


# init_from_checkpoint ---------------------------------------------------------

@pytest.fixture
def tf_ckpt(ckpt):
    """A TensorFlow checkpoint directory: old_scope_1/var1 [20, 2],
    old_scope_1/var2 [50, 4] and old_scope_2/var3 [100, 10] saved in 4
    slices, and a root variable."""
    rng = np.random.default_rng(5)
    values = {"old_scope_1/var1": rng.normal(size=[20, 2]).astype(np.float32),
              "old_scope_1/var2": rng.normal(size=[50, 4]).astype(np.float32),
              "old_scope_2/var3": rng.normal(size=[100, 10]).astype(
                  np.float32),
              "root_var": rng.normal(size=[3]).astype(np.float32)}
    var3 = values["old_scope_2/var3"]
    tf_checkpoint.write_checkpoint(str(ckpt / "model.ckpt-10"), [
        ("old_scope_1/var1", values["old_scope_1/var1"]),
        ("old_scope_1/var2", values["old_scope_1/var2"]),
        ("old_scope_2/var3", [100, 10], [([25 * i, 0], var3[25 * i:25 * i + 25])
                                         for i in range(4)]),
        ("root_var", values["root_var"])])
    tf_checkpoint.write_state(str(ckpt), ["model.ckpt-10"])
    return str(ckpt), values


def new_variables():
    with vs.variable_scope("new_scope_1"):
        var1 = vs.get_variable("var1", shape=[20, 2],
                               initializer=vs.zeros_initializer())
    with vs.variable_scope("new_scope_2"):
        var2 = vs.get_variable("var2", shape=[50, 4],
                               initializer=vs.zeros_initializer())
        var3 = vs.get_variable("var3", shape=[100, 10],
                               initializer=vs.zeros_initializer(),
                               partitioner=lambda shape, dtype: [3, 1])
    return var1, var2, var3


def test_init_from_checkpoint_scope_to_scope(server, tf_ckpt):
    directory, values = tf_ckpt
    var1, var2, var3 = new_variables()
    with vs.variable_scope("new_scope_3"):
        root = vs.get_variable("root_var", shape=[3],
                               initializer=vs.zeros_initializer())
    vs.train.init_from_checkpoint(directory, {"old_scope_1/": "new_scope_1/",
                                              "/": "new_scope_3/"})
    np.testing.assert_array_equal(var1.read(), values["old_scope_1/var1"])
    np.testing.assert_array_equal(root.read(), values["root_var"])
    assert (var2.read() == 0).all()


def test_init_from_checkpoint_names_objects_and_partitions(server, tf_ckpt):
    directory, values = tf_ckpt
    var1, var2, var3 = new_variables()
    vs.train.init_from_checkpoint(directory, {
        "old_scope_1/var1": "new_scope_1/var1",
        "old_scope_1/var2": var2,
        # Saved in 4 slices, loaded into 3 parts: each reads its rows.
        "old_scope_2/var3": "new_scope_2/var3"})
    np.testing.assert_array_equal(var1.read(), values["old_scope_1/var1"])
    np.testing.assert_array_equal(var2.read(), values["old_scope_1/var2"])
    np.testing.assert_array_equal(var3.read(), values["old_scope_2/var3"])
    assert [p.shape[0] for p in var3] == [34, 33, 33]


def test_init_from_checkpoint_into_parts_of_a_whole_tensor(server, tf_ckpt):
    directory, values = tf_ckpt
    with vs.variable_scope("p"):
        part_var = vs.get_variable("v", shape=[50, 4],
                                   initializer=vs.zeros_initializer(),
                                   partitioner=vs.fixed_size_partitioner(4))
    vs.train.init_from_checkpoint(directory,
                                  {"old_scope_1/var2": list(part_var)})
    np.testing.assert_array_equal(part_var.read(), values["old_scope_1/var2"])


def test_init_from_checkpoint_leaves_trained_variables(server, tf_ckpt):
    directory, values = tf_ckpt
    var1, var2, _ = new_variables()
    var2.assign_add(np.ones([50, 4]))  # trained since its creation
    vs.train.init_from_checkpoint(directory, {"old_scope_1/": "new_scope_1/",
                                              "old_scope_1/var2": var2})
    np.testing.assert_array_equal(var1.read(), values["old_scope_1/var1"])
    assert (var2.read() == 1).all()
    # A second call (another worker, later) changes nothing either.
    var1.assign_add(np.ones([20, 2]))
    vs.train.init_from_checkpoint(directory, {"old_scope_1/": "new_scope_1/"})
    np.testing.assert_array_equal(var1.read(), values["old_scope_1/var1"] + 1)


def test_init_from_checkpoint_errors(server, tf_ckpt, tmp_path):
    directory, _ = tf_ckpt
    var1, var2, _ = new_variables()
    with pytest.raises(ValueError, match=r"^Tensor old_scope_1/nothing is not "
                                         r"found in .* checkpoint \{"):
        vs.train.init_from_checkpoint(directory,
                                      {"old_scope_1/nothing": var1})
    with pytest.raises(ValueError) as e:
        vs.train.init_from_checkpoint(directory, {"old_scope_1/var2": var1})
    assert str(e.value) == (
        "Shape of variable new_scope_1/var1:0 ((20, 2)) doesn't match with "
        "shape of tensor old_scope_1/var2 ([50, 4]) from checkpoint reader.")
    with pytest.raises(ValueError) as e:
        vs.train.init_from_checkpoint(directory, {"old_scope_1": "new_scope_1/x"})
    assert str(e.value) == (
        "Assignment map with scope only name new_scope_1 should map to scope "
        "only old_scope_1. Should be 'scope/': 'other_scope/'.")
    with pytest.raises(ValueError, match=r"^Tensor old_scope_2/var1 \(var1 in "
                                         r"old_scope_2/\) is not found in "):
        vs.train.init_from_checkpoint(directory,
                                      {"old_scope_2/": "new_scope_1/"})
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match="Couldn't find 'checkpoint' file"):
        vs.train.init_from_checkpoint(str(empty), {"/": "/"})
    assert (var1.read() == 0).all() and (var2.read() == 0).all()


def test_warm_start_a_model_from_a_tensorflow_checkpoint(server, ckpt):
    """A linear model trained in TensorFlow (its checkpoint written by the
    fixture), warm-started here and trained on: it starts at the
    checkpoint's loss, not from scratch."""
    rng = np.random.default_rng(0)
    true_w = np.array([[2.0], [-3.0], [0.5]], np.float32)
    x = rng.normal(size=[256, 3]).astype(np.float32)
    y = x @ true_w + 1.0
    trained_w = true_w + np.float32(0.05)
    tf_checkpoint.write_checkpoint(str(ckpt / "model.ckpt-500"), [
        ("global_step", np.array(500, np.int64)),
        ("linear/bias", np.array([0.98], np.float32)),
        ("linear/weights", trained_w)])
    tf_checkpoint.write_state(str(ckpt), ["model.ckpt-500"])

    with vs.variable_scope("warm", reuse=vs.AUTO_REUSE):
        w = vs.get_variable("weights", shape=[3, 1])
        b = vs.get_variable("bias", shape=[1],
                            initializer=vs.zeros_initializer())
    vs.train.init_from_checkpoint(str(ckpt), {"linear/": "warm/"})

    def loss():
        return float(np.mean((x @ w.read() + b.read() - y) ** 2))
    assert loss() < 0.01
    opt = vs.train.GradientDescentOptimizer(0.1)
    for _ in range(50):
        err = x @ w.read() + b.read() - y
        opt.apply_gradients([(2 * x.T @ err / len(x), w),
                             (2 * err.mean(0), b)])
    assert loss() < 1e-4
