"""Embedding lookups, as tf.compat.v1.nn.embedding_lookup and
embedding_lookup_sparse.

The rows are gathered on the server (each id once, one call per part that
holds any of them, the parts' calls at once: on a cluster the parts are on
several shards), so only the rows needed travel; the result is a numpy
array. `params` is a Variable, a PartitionedVariable (partitioned along axis
0), or a list of Variables (or arrays) that together make one table; ids
are spread over a list's elements by `partition_strategy`, as TensorFlow 1
does (its default "mod": id i is row i // n of element i % n; "div": ids in
contiguous ranges, the first `rows % n` elements one id longer, which is how
a PartitionedVariable's parts are laid out, so that "div" over a
PartitionedVariable reads the rows of its whole value while "mod" reads
another row for the same id).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from varscope import errors
from varscope.embedding_variable import EmbeddingVariable
from varscope.sparse_tensor import SparseTensor
from varscope.tensor_shape import TensorShape
from varscope.variables import PartitionedVariable
from varscope.variables import _VariableBase
from varscope.variables import check_rows
from varscope.variables import in_parallel


def _as_params(params: Any) -> list:
    """The list of tables `params` stands for (TensorFlow's rules)."""
    if params is None:
        raise ValueError("params must be specified")
    if isinstance(params, (list, tuple)) and not params:
        raise ValueError("Need at least one param")
    if isinstance(params, PartitionedVariable):
        axis, _ = params._axis()
        if axis != 0 and len(params) > 1:
            raise ValueError(
                "Embedding lookups need a variable partitioned along axis 0; "
                "%s is partitioned along axis %d" % (params.name, axis))
        return list(params)
    if isinstance(params, (list, tuple)):
        return list(params)
    return [params]


def _name_of(param: Any) -> str:
    return param._shared_name if isinstance(param, _VariableBase) else "params"


def _assign(ids: np.ndarray, sizes: list, strategy: str) -> tuple:
    """(element, row in it) of each id, by TensorFlow's formulas."""
    n = len(sizes)
    if n == 1:
        return np.zeros_like(ids), ids
    if strategy == "mod":
        return ids % n, ids // n
    if strategy == "div":
        per, extras = divmod(sum(sizes), n)
        if per == 0:  # Fewer ids than elements: one id each.
            return ids, np.zeros_like(ids)
        element = np.maximum(ids // (per + 1), (ids - extras) // per)
        row = np.where(element < extras, ids % (per + 1),
                       (ids - extras) % per)
        return element, row
    raise ValueError("Unrecognized partition strategy: " + strategy)


def _check_range(flat_ids, element, row, params, sizes, strategy):
    """InvalidArgumentError for the first id that maps to no row."""
    if len(sizes) == 1:
        check_rows(flat_ids, _name_of(params[0]), sizes[0])
        return
    bad = (flat_ids < 0) | (element >= len(sizes))
    bad[~bad] = row[~bad] >= np.asarray(sizes)[element[~bad]]
    positions = np.flatnonzero(bad)
    if not positions.size:
        return
    i = int(positions[0])
    if flat_ids[i] < 0 or element[i] >= len(sizes):
        raise errors.InvalidArgumentError(
            None, None, "Index %d at position %d is out of range for the "
            "embedding params with %d rows" % (flat_ids[i], i, sum(sizes)))
    raise errors.InvalidArgumentError(
        None, None, "Index %d at position %d is row %d of %s (params[%d] for "
        "partition_strategy %r), which has %d rows" %
        (flat_ids[i], i, row[i], _name_of(params[element[i]]), element[i],
         strategy, sizes[element[i]]))


def _gather_rows(param: Any, rows: np.ndarray) -> np.ndarray:
    if isinstance(param, _VariableBase):
        return param.sparse_read(rows)
    return np.asarray(param)[rows]


def _no_rows(param: Any) -> np.ndarray:
    """An empty result for `param`, without a call."""
    if isinstance(param, _VariableBase):
        return np.zeros((0,) + tuple(param.shape[1:]),
                        dtype=param.dtype.as_numpy_dtype)
    return np.asarray(param)[:0]


def _clip(rows: np.ndarray, max_norm: Any) -> np.ndarray:
    """TensorFlow's clip_by_norm of each row (embedding) to `max_norm`."""
    if max_norm is None:
        return rows
    norms = np.sqrt(np.sum(rows * rows, axis=tuple(range(1, rows.ndim)),
                           keepdims=True))
    return rows * max_norm / np.maximum(norms, max_norm)


def _lookup_unique(params: list, ids: np.ndarray, partition_strategy: str,
                   max_norm: Any) -> tuple:
    """The rows of the distinct ids of `ids` (flattened) and, for each id,
    the index of its row: (rows, inverse)."""
    flat = ids.reshape(-1)
    unique, inverse = np.unique(flat, return_inverse=True)
    sizes = [int(p.shape[0]) for p in params]
    element, row = _assign(unique, sizes, partition_strategy)
    # Report positions in the caller's ids.
    _check_range(flat, element[inverse], row[inverse], params, sizes,
                 partition_strategy)
    wanted = [(int(e), np.flatnonzero(element == e))
              for e in np.unique(element)]
    gathered = in_parallel([lambda e=e, at=at: _gather_rows(params[e], row[at])
                            for e, at in wanted])
    pieces = {e: (at, rows) for (e, at), rows in zip(wanted, gathered)}
    if pieces:
        first = next(iter(pieces.values()))[1]
        out = np.empty((unique.size,) + first.shape[1:], dtype=first.dtype)
        for at, gathered in pieces.values():
            out[at] = gathered
    else:
        out = _no_rows(params[0])
    return _clip(out, max_norm), inverse


def _as_ids(ids: Any, what: str = "ids") -> np.ndarray:
    ids = np.asarray(ids)
    if ids.size and ids.dtype.kind not in "iu":
        raise TypeError("%s must be integers, got %s" % (what, ids.dtype))
    return ids.astype(np.int64)


def embedding_lookup(params: Any, ids: Any, partition_strategy: str = "mod",
                     name: str | None = None, validate_indices: bool = True,
                     max_norm: Any = None) -> np.ndarray:
    """The rows of `params` for `ids` (an integer array of any shape): an
    array of shape ids.shape + the rows' shape, as
    tf.compat.v1.nn.embedding_lookup. With `max_norm`, each row whose L2
    norm is larger is scaled down to it. `params` may be an
    EmbeddingVariable (any integer ids, counted as its sparse_read counts).

    Raises ValueError for no params or an unknown partition_strategy (when
    there are several elements), TypeError for ids that are not integers,
    InvalidArgumentError for an id that maps to no row (before any call).
    """
    del name, validate_indices  # No op; ids are always checked.
    if isinstance(params, EmbeddingVariable):
        rows = params.sparse_read(ids)
        dim = params.embedding_dim
        return _clip(rows.reshape(-1, dim), max_norm).reshape(rows.shape)
    params = _as_params(params)
    ids = _as_ids(ids)
    rows, inverse = _lookup_unique(params, ids, partition_strategy, max_norm)
    return rows[inverse].reshape(ids.shape + rows.shape[1:])


def _segment_sum(values: np.ndarray, segments: np.ndarray,
                 count: int) -> np.ndarray:
    out = np.zeros((count,) + values.shape[1:], dtype=values.dtype)
    np.add.at(out, segments, values)
    return out


def _check_compatible(a: np.ndarray, b: np.ndarray) -> None:
    if a.shape != b.shape:
        raise ValueError("Shapes %s and %s are incompatible" %
                         (TensorShape(a.shape), TensorShape(b.shape)))


def embedding_lookup_sparse(params: Any, sp_ids: SparseTensor,
                            sp_weights: SparseTensor | None,
                            partition_strategy: str = "mod",
                            name: str | None = None,
                            combiner: str | None = None,
                            max_norm: Any = None) -> np.ndarray:
    """Combined embeddings of sparse ids, as
    tf.compat.v1.nn.embedding_lookup_sparse.

    Row r of the result combines the rows of the ids at sp_ids positions
    [r, ...] (sp_ids.indices[:, 0] == r, in increasing order), weighted by
    sp_weights (same indices; None: weight 1), with `combiner`: "sum", "mean"
    (the default: sum divided by the sum of the weights) or "sqrtn" (sum
    divided by the square root of the sum of squared weights). `max_norm`
    clips each row before combining. As TensorFlow's, the result has
    max(row) + 1 rows of the rows' shape (float16 rows are combined in
    float32), a row without ids is zeros (NaN for weighted "mean" and
    "sqrtn", which divide by a zero weight).

    Raises ValueError for an unknown combiner or weights whose shapes differ
    from the ids', TypeError for arguments that are not SparseTensors,
    InvalidArgumentError for row indices that are not increasing and for ids
    that map to no row.
    """
    del name  # No op to name.
    if combiner is None:
        combiner = "mean"
    if combiner not in ("mean", "sqrtn", "sum"):
        raise ValueError("combiner must be one of 'mean', 'sqrtn' or 'sum'")
    if not isinstance(sp_ids, SparseTensor):
        raise TypeError("sp_ids must be SparseTensor")
    if sp_weights is not None:
        if not isinstance(sp_weights, SparseTensor):
            raise TypeError("sp_weights must be either None or SparseTensor")
        _check_compatible(sp_ids.values, sp_weights.values)
        _check_compatible(sp_ids.indices, sp_weights.indices)
        _check_compatible(sp_ids.dense_shape, sp_weights.dense_shape)
    segments = sp_ids.indices[:, 0]
    if segments.size and (segments[0] < 0 or np.any(np.diff(segments) < 0)):
        raise errors.InvalidArgumentError(None, None,
                                          "segment ids are not increasing")
    count = int(segments[-1]) + 1 if segments.size else 0
    ids = _as_ids(sp_ids.values, "sp_ids values")
    rows, inverse = _lookup_unique(_as_params(params), ids,
                                   partition_strategy, max_norm)
    if rows.dtype == np.float16:
        rows = rows.astype(np.float32)
    embeddings = rows[inverse]
    extra_dims = (1,) * (embeddings.ndim - 1)
    if sp_weights is None:
        weights = np.ones(len(ids), dtype=embeddings.dtype)
    else:
        weights = np.asarray(sp_weights.values).astype(embeddings.dtype)
    weights = weights.reshape((-1,) + extra_dims)
    total = _segment_sum(embeddings * weights, segments, count)
    if combiner == "sum":
        return total
    if combiner == "mean":
        divisor = _segment_sum(weights, segments, count)
    else:
        divisor = np.sqrt(_segment_sum(weights * weights, segments, count))
    if sp_weights is None:
        # TensorFlow's sparse_segment_mean/sqrt_n: zeros for empty rows.
        divisor = np.where(divisor == 0, 1, divisor).astype(divisor.dtype)
    with np.errstate(divide="ignore", invalid="ignore"):
        return total / divisor
