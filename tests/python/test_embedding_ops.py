"""vs.nn.embedding_lookup and embedding_lookup_sparse against numpy
references of TensorFlow's documented behaviour: the id -> (element, row)
assignment of "mod" and "div" as the docs list it, clip_by_norm for
max_norm, and the combiners' formulas."""

import numpy as np
import pytest

import varscope as vs
from varscope import errors
from varscope.variables import _VariableBase

pytestmark = pytest.mark.usefixtures("server")


def documented_layout(num_ids, n, strategy):
    """The ids of each element as TensorFlow's docs list them: 13 ids over 5
    elements are [[0, 5, 10], [1, 6, 11], [2, 7, 12], [3, 8], [4, 9]] for
    "mod" and [[0, 1, 2], [3, 4, 5], [6, 7, 8], [9, 10], [11, 12]] for
    "div"."""
    if strategy == "mod":
        return [list(range(p, num_ids, n)) for p in range(n)]
    sizes = [num_ids // n + (p < num_ids % n) for p in range(n)]
    starts = np.concatenate([[0], np.cumsum(sizes)])
    return [list(range(starts[p], starts[p + 1])) for p in range(n)]


def reference(elements, ids, strategy):
    """Rows of `elements` (numpy arrays) for ids, by documented_layout."""
    total = sum(len(e) for e in elements)
    where = {}
    for p, element_ids in enumerate(documented_layout(total, len(elements),
                                                      strategy)):
        for row, i in enumerate(element_ids):
            where[i] = (p, row)
    ids = np.asarray(ids)
    out = [elements[where[i][0]][where[i][1]] for i in ids.reshape(-1)]
    return np.asarray(out).reshape(ids.shape + elements[0].shape[1:])


def clip_reference(rows, max_norm):
    """tf.clip_by_norm of each row: row * max_norm / max(norm, max_norm)."""
    out = []
    for row in rows.reshape(-1, rows.shape[-1]):
        norm = np.sqrt(np.sum(row.astype(np.float64) ** 2))
        out.append(row * max_norm / max(norm, max_norm))
    return np.asarray(out, dtype=rows.dtype).reshape(rows.shape)


def table(rows=13, dims=3):
    return np.arange(rows * dims, dtype=np.float32).reshape(rows, dims) / 10


def no_whole_reads(monkeypatch):
    """Makes reading a whole variable fail: lookups must gather rows."""
    def fail(self):
        raise AssertionError("read the whole of %s" % self.name)
    monkeypatch.setattr(_VariableBase, "read", fail)


IDS = [[12, 0, 5], [7, 7, 3]]


def test_single_variable(monkeypatch):
    value = table()
    params = vs.get_variable("emb", initializer=value)
    no_whole_reads(monkeypatch)
    out = vs.nn.embedding_lookup(params, IDS)
    assert out.shape == (2, 3, 3) and out.dtype == np.float32
    np.testing.assert_array_equal(out, value[np.asarray(IDS)])
    np.testing.assert_array_equal(vs.nn.embedding_lookup(params, 4),
                                  value[4])
    # Any partition_strategy is accepted for one element, as in TensorFlow.
    np.testing.assert_array_equal(
        vs.nn.embedding_lookup(params, [1], partition_strategy="x"),
        value[[1]])


@pytest.mark.parametrize("strategy", ["mod", "div"])
def test_list_of_variables(strategy, monkeypatch):
    elements = [np.full((size, 2), 10 * p, np.float32) +
                np.arange(size)[:, None] for p, size in enumerate([3, 3, 3, 2, 2])]
    # Elements sized for the strategy hold documented_layout's ids.
    params = [vs.get_variable("e%d" % p, initializer=e)
              for p, e in enumerate(elements)]
    no_whole_reads(monkeypatch)
    ids = np.array([[0, 5, 10, 12], [3, 8, 11, 4]])
    np.testing.assert_array_equal(
        vs.nn.embedding_lookup(params, ids, partition_strategy=strategy),
        reference(elements, ids, strategy))
    np.testing.assert_array_equal(
        vs.nn.embedding_lookup(elements, ids, partition_strategy=strategy),
        reference(elements, ids, strategy))


def test_partitioned_variable_div_reads_the_whole_and_mod_does_not():
    value = table()
    params = vs.get_variable("emb", value.shape, initializer=value,
                             partitioner=vs.fixed_size_partitioner(5))
    parts = [part.read() for part in params]
    assert [len(p) for p in parts] == [3, 3, 3, 2, 2]
    ids = np.arange(13)
    div = vs.nn.embedding_lookup(params, ids, partition_strategy="div")
    np.testing.assert_array_equal(div, value[ids])
    np.testing.assert_array_equal(div, reference(parts, ids, "div"))
    mod = vs.nn.embedding_lookup(params, ids)  # TensorFlow 1's default
    np.testing.assert_array_equal(mod, reference(parts, ids, "mod"))
    # Id 1 is row 0 of part 1 under "mod", row 1 of the whole.
    np.testing.assert_array_equal(mod[1], value[3])


def test_max_norm():
    value = table() - 1
    params = vs.get_variable("emb", value.shape, initializer=value,
                             partitioner=vs.fixed_size_partitioner(2))
    ids = [[0, 9], [12, 1]]
    for strategy in ("mod", "div"):
        plain = vs.nn.embedding_lookup(params, ids,
                                       partition_strategy=strategy)
        clipped = vs.nn.embedding_lookup(params, ids, max_norm=1.5,
                                         partition_strategy=strategy)
        np.testing.assert_allclose(clipped, clip_reference(plain, 1.5),
                                   rtol=1e-6)
    norms = np.linalg.norm(clipped, axis=-1)
    assert np.all(norms <= 1.5 + 1e-6) and np.any(norms < 1.4)


def test_local_variables_and_dtypes():
    local = vs.get_local_variable("local", initializer=table(4, 2))
    np.testing.assert_array_equal(vs.nn.embedding_lookup(local, [3, 0]),
                                  table(4, 2)[[3, 0]])
    half = vs.get_variable("half", initializer=table(4, 2).astype(
        np.float16))
    assert vs.nn.embedding_lookup(half, [1]).dtype == np.float16
    empty = vs.nn.embedding_lookup([half, half], np.zeros([0, 2], np.int64))
    assert empty.shape == (0, 2, 2) and empty.dtype == np.float16


def test_bad_arguments():
    params = vs.get_variable("emb", initializer=table(5, 2))
    parted = vs.get_variable("parted", [5, 2], initializer=table(5, 2),
                             partitioner=vs.fixed_size_partitioner(2))
    with pytest.raises(errors.InvalidArgumentError, match="^Index 5 at "
                       "position 2 is out of range for variable emb with 5 "
                       "rows$"):
        vs.nn.embedding_lookup(params, [[0, 1], [5, 1]])
    with pytest.raises(errors.InvalidArgumentError, match="^Index -1 at "
                       "position 0 is out of range for the embedding params "
                       "with 5 rows$"):
        vs.nn.embedding_lookup(parted, [-1])
    with pytest.raises(errors.InvalidArgumentError, match="^Index 5 at "
                       "position 1 is row 2 of parted/part_1 "
                       r"\(params\[1\] for partition_strategy 'mod'\), which "
                       "has 2 rows$"):
        vs.nn.embedding_lookup(parted, [0, 5])
    with pytest.raises(errors.InvalidArgumentError, match="^Index 5 at "
                       "position 0 is out of range for the embedding params "
                       "with 5 rows$"):
        vs.nn.embedding_lookup(parted, [5], partition_strategy="div")
    with pytest.raises(ValueError, match="^Unrecognized partition strategy: "
                       "x$"):
        vs.nn.embedding_lookup(parted, [0], partition_strategy="x")
    with pytest.raises(ValueError, match="^Need at least one param$"):
        vs.nn.embedding_lookup([], [0])
    with pytest.raises(ValueError, match="^params must be specified$"):
        vs.nn.embedding_lookup(None, [0])
    with pytest.raises(TypeError, match="^ids must be integers, got "
                       "float64$"):
        vs.nn.embedding_lookup(params, [0.5])
    columns = vs.get_variable("columns", [4, 4], partitioner=(
        vs.fixed_size_partitioner(2, axis=1)))
    with pytest.raises(ValueError, match="^Embedding lookups need a variable "
                       "partitioned along axis 0; columns is partitioned "
                       "along axis 1$"):
        vs.nn.embedding_lookup(columns, [0])


# TensorFlow's documented example: params 10 x 20, and
#   [0, 0]: id 1, weight 2.0
#   [0, 1]: id 3, weight 0.5
#   [1, 0]: id 0, weight 1.0
#   [2, 3]: id 1, weight 3.0
SP_INDICES = [[0, 0], [0, 1], [1, 0], [2, 3]]
SP_IDS = vs.SparseTensor(SP_INDICES, [1, 3, 0, 1], [3, 4])
SP_WEIGHTS = vs.SparseTensor(SP_INDICES, [2.0, 0.5, 1.0, 3.0], [3, 4])


def combine_reference(p, combiner, weighted):
    w = [2.0, 0.5, 1.0, 3.0] if weighted else [1.0] * 4
    rows = [[(p[1], w[0]), (p[3], w[1])], [(p[0], w[2])], [(p[1], w[3])]]
    out = []
    for row in rows:
        total = sum(e * wi for e, wi in row)
        if combiner == "mean":
            total = total / sum(wi for _, wi in row)
        elif combiner == "sqrtn":
            total = total / np.sqrt(sum(wi * wi for _, wi in row))
        out.append(total)
    return np.asarray(out)


@pytest.mark.parametrize("weighted", [True, False], ids=["weighted", "ones"])
@pytest.mark.parametrize("combiner", ["sum", "mean", "sqrtn"])
def test_sparse_combiners(combiner, weighted, monkeypatch):
    value = np.random.default_rng(3).normal(size=(10, 20)).astype(np.float32)
    for params, strategy, parts in (
            (vs.get_variable("emb_%s_%s" % (combiner, weighted),
                             initializer=value), "mod", None),
            (vs.get_variable("mod_%s_%s" % (combiner, weighted),
                             value.shape, initializer=value,
                             partitioner=vs.fixed_size_partitioner(3)),
             "mod", 3),
            (vs.get_variable("div_%s_%s" % (combiner, weighted),
                             value.shape, initializer=value,
                             partitioner=vs.fixed_size_partitioner(3)),
             "div", 3)):
        # The table as the lookup sees it: rows of the whole for "div",
        # documented_layout's for "mod" over parts.
        seen = value if parts is None or strategy == "div" else reference(
            [part.read() for part in params], np.arange(10), "mod")
        with monkeypatch.context() as patch:
            no_whole_reads(patch)
            out = vs.nn.embedding_lookup_sparse(
                params, SP_IDS, SP_WEIGHTS if weighted else None,
                partition_strategy=strategy, combiner=combiner)
        np.testing.assert_allclose(
            out, combine_reference(seen, combiner, weighted), rtol=1e-5)
        assert out.shape == (3, 20) and out.dtype == np.float32


def test_sparse_defaults_empty_rows_max_norm_and_float16():
    value = table(10, 4)
    params = vs.get_variable("emb", initializer=value)
    # combiner=None is "mean"; row 1 has no ids.
    ids = vs.SparseTensor([[0, 0], [0, 1], [2, 0]], [1, 3, 2], [4, 2])
    out = vs.nn.embedding_lookup_sparse(params, ids, None)
    assert out.shape == (3, 4)  # max(row) + 1 rows, as TensorFlow's
    np.testing.assert_allclose(out, [(value[1] + value[3]) / 2,
                                     np.zeros(4), value[2]], rtol=1e-6)
    weights = vs.SparseTensor([[0, 0], [0, 1], [2, 0]], [1.0, 1.0, 2.0],
                              [4, 2])
    weighted = vs.nn.embedding_lookup_sparse(params, ids, weights)
    assert np.all(np.isnan(weighted[1]))  # 0 / 0, as TensorFlow's
    clipped = vs.nn.embedding_lookup_sparse(params, ids, None, max_norm=1.0,
                                            combiner="sum")
    np.testing.assert_allclose(
        clipped[0], clip_reference(value[[1, 3]], 1.0).sum(axis=0),
        rtol=1e-6)
    half = vs.get_variable("half", initializer=value.astype(np.float16))
    assert vs.nn.embedding_lookup_sparse(half, ids, None).dtype == np.float32
    empty = vs.SparseTensor(np.zeros([0, 2]), np.zeros([0], np.int64), [0, 2])
    assert vs.nn.embedding_lookup_sparse(params, empty, None).shape == (0, 4)


def test_sparse_bad_arguments():
    params = vs.get_variable("emb", initializer=table(10, 2))
    with pytest.raises(ValueError, match="^combiner must be one of 'mean', "
                       "'sqrtn' or 'sum'$"):
        vs.nn.embedding_lookup_sparse(params, SP_IDS, None, combiner="max")
    with pytest.raises(TypeError, match="^sp_ids must be SparseTensor$"):
        vs.nn.embedding_lookup_sparse(params, [1, 2], None)
    with pytest.raises(TypeError, match="^sp_weights must be either None or "
                       "SparseTensor$"):
        vs.nn.embedding_lookup_sparse(params, SP_IDS, [1.0])
    with pytest.raises(ValueError, match=r"^Shapes \(4,\) and \(3,\) are "
                       "incompatible$"):
        vs.nn.embedding_lookup_sparse(params, SP_IDS, vs.SparseTensor(
            SP_INDICES[:3], [1.0, 1.0, 1.0], [3, 4]))
    with pytest.raises(errors.InvalidArgumentError, match="^segment ids are "
                       "not increasing$"):
        vs.nn.embedding_lookup_sparse(params, vs.SparseTensor(
            [[1, 0], [0, 0]], [1, 2], [2, 1]), None)
    with pytest.raises(ValueError, match=r"^A SparseTensor needs indices of "
                       r"shape \[N, rank\], values of shape \[N\] and "
                       r"dense_shape of shape \[rank\]; got indices \(2, 2\), "
                       r"values \(3,\) and dense_shape \(2,\)$"):
        vs.SparseTensor([[0, 0], [1, 0]], [1, 2, 3], [2, 1])
