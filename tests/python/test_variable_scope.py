"""variable_scope: names, reuse inheritance, default_name uniquifying,
scope-level defaults and argument errors, as TensorFlow's."""

import threading

import numpy as np
import pytest

import varscope as vs

pytestmark = pytest.mark.usefixtures("server")


def scope_name():
    return vs.get_variable_scope().name


def test_names_nest_and_strings_are_not_uniquified():
    assert scope_name() == ""
    with vs.variable_scope("a") as a:
        assert a.name == "a"
        with vs.variable_scope("b") as b:
            assert b.name == "a/b" == scope_name()
            assert vs.get_variable("v", shape=[1]).name == "a/b/v:0"
    with vs.variable_scope("a") as again:
        assert again.name == "a"
    assert scope_name() == ""


class TestReuseInheritance:

    def test_root_is_false_and_none_inherits(self):
        assert vs.get_variable_scope().reuse is False
        with vs.variable_scope("a") as a:
            assert a.reuse is False

    def test_true_is_sticky(self):
        with vs.variable_scope("a", reuse=True):
            with vs.variable_scope("b") as b:
                assert b.reuse is True
            with vs.variable_scope("c", reuse=False) as c:
                assert c.reuse is True

    def test_auto_reuse_under_true_stays_auto_reuse(self):
        with vs.variable_scope("a", reuse=True):
            with vs.variable_scope("b", reuse=vs.AUTO_REUSE) as b:
                assert b.reuse is vs.AUTO_REUSE
                with vs.variable_scope("c") as c:
                    assert c.reuse is vs.AUTO_REUSE
                with vs.variable_scope("d", reuse=True) as d:
                    assert d.reuse is True

    def test_captured_scope_keeps_its_own_reuse(self):
        with vs.variable_scope("a") as captured:
            vs.get_variable("v", shape=[1])
        with vs.variable_scope("other", reuse=True):
            with vs.variable_scope(captured) as reentered:
                assert reentered.name == "a"
                assert reentered.reuse is False
                with pytest.raises(ValueError, match="already exists"):
                    vs.get_variable("v", shape=[1])
            with vs.variable_scope(captured, reuse=True) as reused:
                assert reused.reuse is True
                assert not vs.get_variable("v", shape=[1]).created

    def test_reuse_variables(self):
        with vs.variable_scope("a") as a:
            first = vs.get_variable("v", shape=[1])
            a.reuse_variables()
            assert a.reuse is True
            again = vs.get_variable("v", shape=[1])
            assert again.name == first.name and not again.created
            with vs.variable_scope("child") as child:
                assert child.reuse is True
        with vs.variable_scope(a) as reentered:
            assert reentered.reuse is True

    def test_reuse_variables_on_a_reentered_copy_spares_the_captured(self):
        with vs.variable_scope("a") as a:
            pass
        with vs.variable_scope(a) as copy:
            copy.reuse_variables()
        assert a.reuse is False


class TestDefaultName:
    """Each test runs in a scope "case": leaving it resets the counters of
    the scopes under it (root-level counters live as long as the thread)."""

    @pytest.fixture(autouse=True)
    def case_scope(self):
        with vs.variable_scope("case"):
            yield

    def names(self, n, default_name="bar"):
        out = []
        for _ in range(n):
            with vs.variable_scope(None, default_name=default_name) as s:
                out.append(s.name)
        return out

    def test_uniquified_in_order(self):
        assert self.names(3) == ["case/bar", "case/bar_1", "case/bar_2"]

    def test_string_scopes_count(self):
        with vs.variable_scope("bar"):
            pass
        assert self.names(2) == ["case/bar_1", "case/bar_2"]

    def test_name_or_scope_wins(self):
        with vs.variable_scope("given", default_name="bar") as s:
            assert s.name == "case/given"

    def test_counters_of_children_reset_when_the_parent_exits(self):
        with vs.variable_scope("foo"):
            assert self.names(2) == ["case/foo/bar", "case/foo/bar_1"]
        with vs.variable_scope("foo"):
            assert self.names(1) == ["case/foo/bar"]

    def test_reentered_captured_scope_restores_counters(self):
        with vs.variable_scope("foo") as foo:
            pass
        with vs.variable_scope(foo):
            assert self.names(2) == ["case/foo/bar", "case/foo/bar_1"]
        with vs.variable_scope(foo):
            assert self.names(1) == ["case/foo/bar"]

    def test_inherits_reuse(self):
        with vs.variable_scope("a", reuse=True):
            with vs.variable_scope(None, default_name="d") as d:
                assert d.reuse is True

    @pytest.mark.parametrize("reuse", [True, vs.AUTO_REUSE])
    def test_reuse_without_name_is_an_error(self, reuse):
        scope = vs.variable_scope(None, default_name="d", reuse=reuse)
        with pytest.raises(ValueError) as e:
            scope.__enter__()
        assert str(e.value) == ("reuse=True cannot be used without a "
                                "name_or_scope")
        assert scope_name() == "case"


class TestArgumentErrors:

    def test_name_required(self):
        with pytest.raises(TypeError) as e:
            vs.variable_scope(None)
        assert str(e.value) == ("If default_name is None then name_or_scope "
                                "is required")

    @pytest.mark.parametrize("reuse", ["yes", 2, 0])
    def test_bad_reuse(self, reuse):
        with pytest.raises(ValueError) as e:
            vs.variable_scope("a", reuse=reuse)
        assert str(e.value) == ("The reuse parameter must be True or False "
                                "or None.")

    def test_bad_name_type(self):
        with pytest.raises(TypeError) as e:
            with vs.variable_scope(42):
                pass
        assert str(e.value) == ("VariableScope: name_or_scope must be a "
                                "string or VariableScope.")

    def test_bad_auxiliary_name_scope(self):
        with pytest.raises(TypeError, match="auxiliary_name_scope"):
            vs.variable_scope("a", auxiliary_name_scope=1)

    def test_improper_nesting(self):
        outer, inner = vs.variable_scope("outer"), vs.variable_scope("inner")
        outer.__enter__()
        inner.__enter__()
        with pytest.raises(RuntimeError) as e:
            outer.__exit__(None, None, None)
        assert str(e.value) == "Improper nesting of variable_scope."
        assert scope_name() == "outer/inner"
        inner.__exit__(None, None, None)
        outer.__exit__(None, None, None)
        assert scope_name() == ""


class TestScopeDefaults:

    def test_initializer_inherits_and_is_overridden(self):
        ones = vs.ones_initializer()
        with vs.variable_scope("a", initializer=ones) as a:
            assert a.initializer is ones
            np.testing.assert_array_equal(
                vs.get_variable("v", shape=[2]).read(), [1, 1])
            with vs.variable_scope("b") as b:
                assert b.initializer is ones
                np.testing.assert_array_equal(
                    vs.get_variable("v", shape=[2]).read(), [1, 1])
                np.testing.assert_array_equal(
                    vs.get_variable("w", shape=[2],
                                    initializer=vs.zeros_initializer()).read(),
                    [0, 0])
            with vs.variable_scope(
                    "c", initializer=vs.constant_initializer(3)):
                np.testing.assert_array_equal(
                    vs.get_variable("v", shape=[2]).read(), [3, 3])

    def test_dtype_inherits_and_is_overridden(self):
        with vs.variable_scope("a", dtype=vs.float64) as a:
            assert a.dtype == vs.float64
            assert vs.get_variable("v", shape=[1]).dtype == vs.float64
            with vs.variable_scope("b"):
                assert vs.get_variable("v", shape=[1]).dtype == vs.float64
                assert vs.get_variable(
                    "w", shape=[1], dtype=vs.int32).dtype == vs.int32
        assert vs.get_variable_scope().dtype == vs.float32

    def test_partitioner_inherits(self):
        with vs.variable_scope(
                "a", partitioner=vs.fixed_size_partitioner(2)) as a:
            with vs.variable_scope("b"):
                p = vs.get_variable("v", shape=[4, 1])
                assert isinstance(p, vs.PartitionedVariable)
                assert len(p) == 2
                scalar = vs.get_variable("s", shape=[])
                assert isinstance(scalar, vs.Variable)
            assert a.partitioner is not None

    def test_setters_change_the_current_scope(self):
        with vs.variable_scope("a"):
            scope = vs.get_variable_scope()
            scope.set_initializer(vs.ones_initializer())
            scope.set_dtype("float16")
            scope.set_partitioner(vs.fixed_size_partitioner(3))
            p = vs.get_variable("v", shape=[3])
            assert p.dtype == vs.float16 and len(p) == 3
            np.testing.assert_array_equal(p.read(), [1, 1, 1])
            with vs.variable_scope("child") as child:
                assert child.dtype == vs.float16

    def test_reentered_scope_takes_the_captured_defaults(self):
        with vs.variable_scope("a", initializer=vs.ones_initializer(),
                               dtype=vs.int32) as a:
            pass
        with vs.variable_scope("other", dtype=vs.float64):
            with vs.variable_scope(a) as again:
                assert again.dtype == vs.int32
                np.testing.assert_array_equal(
                    vs.get_variable("v", shape=[1]).read(), [1])


def test_scope_stacks_are_per_thread():
    seen = {}
    entered, release = threading.Event(), threading.Event()

    def other():
        with vs.variable_scope("thread_scope", reuse=True):
            entered.set()
            release.wait(10)
            seen["other"] = scope_name()

    thread = threading.Thread(target=other)
    thread.start()
    assert entered.wait(10)
    seen["main"] = scope_name()
    with vs.variable_scope("main_scope"):
        release.set()
        thread.join(10)
    assert seen == {"main": "", "other": "thread_scope"}


def test_empty_scope_name_is_the_root(server):
    with vs.variable_scope("") as scope:
        assert scope.name == ""
        assert vs.get_variable("w", shape=[1]).name == "w:0"
