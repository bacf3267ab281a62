"""The tf.compat.v1 graph-level API: name scopes, Variable, collections,
local variables, templates, assign's read_value, global_step(sess, tensor),
and closing clients. Expected names and texts are TensorFlow 1's."""

import gc
import json
import subprocess
import sys

import numpy as np
import pytest

import varscope as vs
from varscope import errors
from conftest import Server

from test_processes import WORKER

GLOBAL = vs.GraphKeys.GLOBAL_VARIABLES
TRAINABLE = vs.GraphKeys.TRAINABLE_VARIABLES


def names(items):
    return [item.name for item in items]


@pytest.fixture(autouse=True)
def fresh_graph():
    """Tests without a server start from a fresh process graph too."""
    vs.reset_default_graph()


class TestNameScope:

    def test_opened_scopes_are_unique_in_the_process(self):
        with vs.name_scope("a") as a:
            with vs.name_scope("b") as b:
                pass
            with vs.name_scope("b") as b1:
                pass
        with vs.name_scope("a") as a1:
            pass
        with vs.name_scope("A") as upper:  # op names ignore case
            pass
        assert (a, b, b1, a1, upper) == ("a/", "a/b/", "a/b_1/", "a_1/",
                                         "A_2/")

    def test_default_name_none_and_reentering(self):
        with vs.name_scope(None, default_name="d") as d:
            with vs.name_scope(None) as root:
                assert root == ""
            with vs.name_scope("d/") as again:
                assert again == "d/"
        with vs.name_scope(None, "d") as d1:
            pass
        assert (d, d1) == ("d/", "d_1/")

    def test_bad_arguments(self):
        with pytest.raises(ValueError, match="^'-x' is not a valid scope "
                           "name$"):
            with vs.name_scope("-x"):
                pass
        with pytest.raises(ValueError, match="^'_x' is not a valid scope "
                           "name$"):
            with vs.name_scope("_x"):
                pass
        with vs.name_scope("a"):
            with vs.name_scope("_x") as nested:  # allowed below the root
                assert nested == "a/_x/"
        with pytest.raises(TypeError, match="is not a string type"):
            vs.name_scope("a", default_name=[1])
        with pytest.raises(ValueError, match=r"^At least one of name \(None\) "
                           r"and default_name \(None\) must be provided.$"):
            with vs.name_scope(None, values=[1]):
                pass


@pytest.mark.usefixtures("server")
class TestVariableNames:

    def test_default_names_and_name_scopes(self):
        assert vs.Variable(1.0).name == "Variable:0"
        assert vs.Variable(1.0).name == "Variable_1:0"
        with vs.name_scope("ns"):
            assert vs.Variable(1.0, name="v").name == "ns/v:0"
            # get_variable ignores name scopes, as in TensorFlow.
            assert vs.get_variable("w", [1]).name == "w:0"
        assert vs.Variable(1.0, name="v").name == "v:0"
        assert vs.Variable(1.0, name="V").name == "V_1:0"  # as "v"

    def test_variable_scopes_open_name_scopes(self):
        with vs.variable_scope("vs") as scope:
            assert scope.original_name_scope == "vs/"
            assert vs.Variable(0, name="c").name == "vs/c:0"
            w = vs.get_variable("w", [1])
        with vs.variable_scope("vs", reuse=True):
            assert vs.Variable(0, name="c").name == "vs_1/c:0"
            assert vs.get_variable("w", [1]).name == w.name == "vs/w:0"
        # Re-entering a captured scope opens a new name scope named after
        # its last part; auxiliary_name_scope=False opens none.
        with vs.variable_scope(scope) as again:
            assert again.original_name_scope == "vs/"
            assert vs.Variable(0, name="c").name == "vs_2/c:0"
        with vs.variable_scope(scope, auxiliary_name_scope=False) as s1:
            with vs.name_scope(s1.original_name_scope):
                assert vs.Variable(0, name="c").name == "vs/c_1:0"
        with vs.variable_scope(None, default_name="layer") as layer:
            assert layer.original_name_scope == "layer/"

    def test_names_of_get_variable_count_as_used(self):
        vs.get_variable("w", [1])
        assert vs.Variable(1.0, name="w").name == "w_1:0"

    def test_bad_name_opens_nothing(self):
        with pytest.raises(ValueError, match="is not a valid scope name"):
            vs.Variable(1.0, name="a b")
        assert vs.list_variables() == []


@pytest.mark.usefixtures("server")
class TestVariable:

    def test_initial_values_and_dtypes(self):
        assert vs.Variable(1.0).dtype == vs.float32
        assert vs.Variable(3).dtype == vs.int32
        assert vs.Variable(np.arange(2, dtype=np.int64)).dtype == vs.int64
        v = vs.Variable(lambda: np.ones([2, 2]), dtype=vs.float32)
        assert (v.shape, v.dtype) == ((2, 2), vs.float32)
        np.testing.assert_array_equal(v.read(), np.ones([2, 2]))
        w = vs.Variable([[1, 2]], dtype=vs.float64, shape=[None, 2])
        np.testing.assert_array_equal(w.read(), [[1.0, 2.0]])
        assert w.read().dtype == np.float64
        copy = vs.Variable(w, name="copy")
        np.testing.assert_array_equal(copy.read(), [[1.0, 2.0]])

    def test_workers_share_a_name(self):
        counter = vs.Variable(0, name="counter", dtype=vs.int64)
        counter.assign_add(5)
        vs.reset_default_graph()  # as another worker process
        other = vs.Variable(100, name="counter", dtype=vs.int64)
        assert other.name == "counter:0"
        assert not other.created and other.read() == 5
        vs.reset_default_graph()
        with pytest.raises(ValueError, match=r"^Trying to share variable "
                           r"counter, but specified shape \(2,\) and found "
                           r"shape \(\)\.$"):
            vs.Variable([1, 2], name="counter", dtype=vs.int64)

    def test_processes_share_a_name(self, server, child_env):
        out = [subprocess.run(
            [sys.executable, WORKER, "variable", server.address, "counter",
             "50"], env=child_env, capture_output=True, text=True,
            timeout=300, check=True).stdout for _ in range(2)]
        assert out == ["counter:0\n"] * 2
        assert vs.Variable(0, name="counter", dtype=vs.int64).read() == 100

    def test_bad_arguments(self):
        with pytest.raises(ValueError, match="^initial_value must be "
                           "specified.$"):
            vs.Variable()
        with pytest.raises(ValueError, match="^collections argument to "
                           "Variable constructor must be a list, tuple, or "
                           "set. Got x of type <class 'str'>$"):
            vs.Variable(1.0, collections="x")
        with pytest.raises(ValueError, match=r"^The initial value's shape "
                           r"\(\(2,\)\) is not compatible with the "
                           r"explicitly supplied `shape` argument "
                           r"\(\(3,\)\)\.$"):
            vs.Variable([1.0, 2.0], shape=[3])
        with pytest.raises(NotImplementedError, match="variable_def"):
            vs.Variable(1.0, variable_def=object())
        assert vs.list_variables() == []


@pytest.mark.usefixtures("server")
class TestAssign:

    def test_read_value_defaults_to_true(self):
        v = vs.get_variable("v", initializer=[1.0, 2.0])
        np.testing.assert_array_equal(v.assign([3.0, 4.0]), [3.0, 4.0])
        np.testing.assert_array_equal(v.assign_add([1.0, 1.0]), [4.0, 5.0])
        np.testing.assert_array_equal(v.assign_sub([2.0, 2.0]), [2.0, 3.0])
        assert v.assign([0.0, 0.0], read_value=False) is v
        assert v.assign_add([1.0, 1.0], read_value=False) is v
        assert v.assign_sub([1.0, 1.0], read_value=False) is v
        assert v.version == 7

    def test_partitioned_variable(self):
        p = vs.get_variable("p", [4, 2], initializer=vs.zeros_initializer(),
                            partitioner=vs.fixed_size_partitioner(2))
        np.testing.assert_array_equal(p.assign_add(np.ones([4, 2])),
                                      np.ones([4, 2]))


@pytest.mark.usefixtures("server")
class TestCollections:

    def test_defaults(self):
        w = vs.get_variable("w", [1])
        c = vs.get_variable("c", [1], trainable=False)
        step = vs.train.get_or_create_global_step()
        assert names(vs.global_variables()) == ["c:0", "global_step:0",
                                               "w:0"]
        assert names(vs.trainable_variables()) == [w.name]
        assert names(vs.get_collection(vs.GraphKeys.GLOBAL_STEP)) == [
            step.name]
        assert names(vs.get_collection(vs.GraphKeys.VARIABLES)) == names(
            vs.global_variables())
        assert c.trainable is False

    def test_given_collections_replace_global_variables(self):
        mine = vs.get_variable("mine", [1], collections=["my_vars"])
        vs.get_variable("hidden", [1], collections=[], trainable=False)
        v = vs.Variable(1.0, name="v", collections={"my_vars"},
                        trainable=False)
        assert names(vs.get_collection("my_vars")) == [mine.name, v.name]
        assert names(vs.global_variables()) == []
        assert names(vs.trainable_variables()) == [mine.name]

    def test_stored_on_the_server_for_every_worker(self, server, tmp_path,
                                                   child_env):
        with vs.variable_scope("model"):
            vs.get_variable("w", [1], collections=[GLOBAL, "my_vars"])
            vs.get_variable("emb", [6, 2], trainable=False,
                            collections=["my_vars"],
                            partitioner=vs.fixed_size_partitioner(2))
        expected = {"my_vars": ["model/emb/part_0:0", "model/emb/part_1:0",
                                "model/w:0"],
                    "trainable": ["model/w:0"]}
        out = subprocess.run(
            [sys.executable, WORKER, "collections", server.address,
             "my_vars"], env=child_env, capture_output=True, text=True,
            timeout=300, check=True).stdout
        assert json.loads(out) == expected
        # And across a crash.
        server.kill()
        restarted = Server(tmp_path / "db")
        try:
            vs.connect(restarted.address, timeout=120)
            assert names(vs.get_collection("my_vars")) == expected["my_vars"]
            assert names(vs.trainable_variables()) == expected["trainable"]
        finally:
            vs.reset_default_graph()
            vs.connect("127.0.0.1:1")
            gc.collect()
            restarted.stop()

    def test_existing_variables_keep_their_collections(self):
        vs.get_variable("w", [1], collections=["first"])
        with vs.variable_scope(vs.get_variable_scope(), reuse=vs.AUTO_REUSE):
            vs.get_variable("w", [1], collections=["second"])
        assert names(vs.get_collection("first")) == ["w:0"]
        assert vs.get_collection("second") == []

    def test_scope_is_a_regular_expression_matched_at_the_start(self):
        for scope in ("dense", "dense_1", "other/dense"):
            with vs.variable_scope(scope):
                vs.get_variable("kernel", [1])
        assert names(vs.global_variables("dense")) == [
            "dense/kernel:0", "dense_1/kernel:0"]
        assert names(vs.global_variables("dense/")) == ["dense/kernel:0"]
        assert names(vs.trainable_variables(".*dense/")) == [
            "dense/kernel:0", "other/dense/kernel:0"]
        with vs.variable_scope("dense") as scope:
            assert names(scope.global_variables()) == ["dense/kernel:0"]
            assert names(scope.trainable_variables()) == ["dense/kernel:0"]

    def test_parts_in_part_order(self):
        vs.get_variable("p", [12, 1], partitioner=vs.fixed_size_partitioner(12))
        assert names(vs.global_variables()) == [
            "p/part_%d:0" % i for i in range(12)]

    def test_optimizer_slots_are_global_not_trainable(self):
        w = vs.get_variable("w", [2])
        vs.train.AdagradOptimizer(0.1).apply_gradients([([1.0, 1.0], w)])
        assert names(vs.global_variables()) == ["w:0", "w/Adagrad:0"]
        assert names(vs.trainable_variables()) == ["w:0"]

    def test_process_collections(self):
        w = vs.get_variable("w", [1], collections=["mine", vs.GraphKeys.LOSSES,
                                                   ("not", "a string")])
        vs.add_to_collection("mine", 42)
        vs.add_to_collections(["mine", "other"], "x")
        mine = vs.get_collection("mine")
        assert names(mine[:1]) == [w.name] and mine[1:] == [42, "x"]
        assert names(vs.get_collection("mine", scope="w")) == ["w:0"]
        assert names(vs.get_collection(vs.GraphKeys.LOSSES)) == ["w:0"]
        assert names(vs.get_collection(("not", "a string"))) == ["w:0"]
        ref = vs.get_collection_ref("other")
        ref.append("y")
        assert vs.get_collection("other") == ["x", "y"]
        vs.reset_default_graph()
        assert names(vs.get_collection("mine")) == ["w:0"]  # on the server
        assert vs.get_collection("other") == []
        assert vs.get_collection(vs.GraphKeys.LOSSES) == []

    def test_bad_collection_names_create_nothing(self):
        with pytest.raises(errors.InvalidArgumentError, match="^Collection "
                           "names of variable w must have 1 to 256 bytes, "
                           "got one of 300$"):
            vs.get_variable("w", [1], collections=["x" * 300])
        with pytest.raises(errors.InvalidArgumentError, match="^Collection "
                           "names of variable w must have 1 to 256 bytes, "
                           "got one of 0$"):
            vs.get_variable("w", [1], collections=[""])
        with pytest.raises(errors.InvalidArgumentError, match="^Variable w "
                           "is given 66 collections; at most 64 are "
                           "allowed$"):
            vs.get_variable("w", [1],
                            collections=["c%d" % i for i in range(65)])
        assert vs.list_variables() == []


@pytest.mark.usefixtures("server")
class TestLocalVariables:

    def test_local_to_the_process(self):
        with vs.variable_scope("metrics"):
            count = vs.get_local_variable("count", [], dtype=vs.int64)
        assert count.name == "metrics/count:0"
        assert not count.trainable
        assert count.assign_add(3) == 3
        assert names(vs.local_variables()) == ["metrics/count:0"]
        assert vs.global_variables() == [] and vs.list_variables() == []
        with vs.variable_scope("metrics", reuse=True):
            again = vs.get_local_variable("count", [], dtype=vs.int64)
        assert again.read() == 3 and again.version == 2
        np.testing.assert_array_equal(
            vs.get_local_variable("rows", initializer=np.arange(6).reshape(
                3, 2)).sparse_read([2, 0]), [[4, 5], [0, 1]])
        v = vs.Variable(0.5, collections=[vs.GraphKeys.LOCAL_VARIABLES],
                        name="v")
        assert v.read() == 0.5 and vs.list_variables() == []
        vs.reset_default_graph()
        assert vs.local_variables() == []

    def test_reuse_rules_and_texts(self):
        vs.get_local_variable("x", [2], collections=["extra"])
        assert names(vs.get_collection("extra")) == ["x:0"]
        with pytest.raises(errors.AlreadyExistsError, match="^Variable x "
                           "already exists, disallowed. Did you mean to set "
                           r"reuse=True or reuse=tf.AUTO_REUSE in VarScope\?$"):
            vs.get_local_variable("x", [2])
        with vs.variable_scope(vs.get_variable_scope(), reuse=True):
            with pytest.raises(errors.NotFoundError, match="^Variable y does "
                               "not exist, or was not created with "
                               r"tf.get_variable\(\). Did you mean to set "
                               r"reuse=tf.AUTO_REUSE in VarScope\?$"):
                vs.get_local_variable("y", [2])
            with pytest.raises(errors.InvalidArgumentError, match=r"^Trying "
                               r"to share variable x, but specified shape "
                               r"\(3,\) and found shape \(2,\)\.$"):
                vs.get_local_variable("x", [3])
            with pytest.raises(errors.InvalidArgumentError, match="^Trying "
                               "to share variable x, but specified dtype "
                               "float64 and found dtype float32.$"):
                vs.get_local_variable("x", [2], dtype=vs.float64)
        with pytest.raises(errors.InvalidArgumentError, match=r"^Shape of a "
                           r"new variable \(z\) must be fully defined, but "
                           r"instead was \(None,\)\.$"):
            vs.get_local_variable("z", [None])

    def test_server_only_operations_fail(self):
        x = vs.get_local_variable("x", [2])
        message = ("^Variable x is local to this process (LOCAL_VARIABLES): "
                   "it cannot join server batches, scatter updates or "
                   "optimizer steps$").replace("(", r"\(").replace(")", r"\)")
        with pytest.raises(errors.FailedPreconditionError, match=message):
            x.scatter_add(vs.IndexedSlices([1.0], [0]))
        with pytest.raises(errors.FailedPreconditionError, match=message):
            vs.train.GradientDescentOptimizer(0.1).apply_gradients(
                [([1.0, 1.0], x)])
        with pytest.raises(NotImplementedError, match="partitioned local"):
            vs.get_local_variable("p", [4, 1],
                                  partitioner=vs.fixed_size_partitioner(2))
        with pytest.raises(errors.InvalidArgumentError, match="^Cannot assign "
                           r"a tensor of shape \(3,\) to variable x of shape "
                           r"\(2,\)$"):
            x.assign([1.0, 2.0, 3.0])
        with pytest.raises(errors.AbortedError, match="^Variable x is at "
                           "version 1, not the expected version 5$"):
            x.assign([1.0, 2.0], expected_version=5)


@pytest.mark.usefixtures("server")
class TestTemplate:

    @staticmethod
    def scale(x, scalar_name):
        y = vs.get_variable(scalar_name, shape=[],
                            initializer=vs.constant_initializer(2.0))
        return x * y.read()

    def test_first_call_creates_later_calls_reuse(self):
        scale_by_y = vs.make_template("scale_by_y", self.scale,
                                      scalar_name="y")
        assert scale_by_y(3.0) == 6.0
        assert scale_by_y(4.0) == 8.0
        assert scale_by_y.variable_scope_name == "scale_by_y/"
        assert names(scale_by_y.trainable_variables) == ["scale_by_y/y:0"]
        other = vs.make_template("scale_by_y", self.scale, scalar_name="y")
        other(1.0)
        assert other.variable_scope.name == "scale_by_y_1"
        assert names(vs.global_variables()) == ["scale_by_y/y:0",
                                               "scale_by_y_1/y:0"]

    def test_scope_now_unique_name_and_custom_getter(self):
        seen = []

        def getter(getter, name, *args, **kwargs):
            seen.append(name)
            return getter(name, *args, **kwargs)

        with vs.variable_scope("outer"):
            now = vs.make_template("t", self.scale, create_scope_now_=True,
                                   scalar_name="y", custom_getter_=getter)
            exact = vs.make_template("t", self.scale, unique_name_="exact",
                                     scalar_name="y")
        now(1.0)
        exact(1.0)
        assert seen == ["outer/t/y"]
        assert names(vs.global_variables()) == ["exact/y:0", "outer/t/y:0"]

    def test_later_trainable_variables_are_an_error(self):
        def make(x):
            return vs.Variable(x, name="oops")

        template = vs.make_template("bad", make)
        template(1.0)
        with pytest.raises(ValueError, match=r"^Trainable variable created "
                           "when calling a template after the first time, "
                           "perhaps you used tf.Variable when you meant "
                           r"tf.get_variable: \['bad_1/oops'\]$"):
            template(2.0)
        with pytest.raises(ValueError, match="^name cannot be None.$"):
            vs.make_template(None, make)


@pytest.mark.usefixtures("server")
def test_global_step_with_session_and_tensor():
    step = vs.train.get_or_create_global_step()
    step.assign_add(3)
    assert vs.train.global_step() == 3
    assert vs.train.global_step(None, step) == 3
    assert vs.train.global_step(object(), "global_step:0") == 3
    counter = vs.get_variable("counter", [], dtype=vs.int32,
                              initializer=vs.constant_initializer(7))
    assert vs.train.global_step(None, counter) == 7


def test_closed_clients_refuse_calls(server):
    with vs.connect(server.address, timeout=120) as client:
        assert vs.get_variable("v", [1]).created
    with pytest.raises(errors.FailedPreconditionError, match="^This varscope "
                       "Client of %s is closed$" % server.address):
        with client.as_default():
            vs.get_variable("w", [1])
    client.close()  # twice is harmless
    assert vs.client.default_client() is not client
