"""Embedding variables: hash tables from integer keys to rows, held by the
server, with DeepRec's names (get_embedding_variable, EmbeddingVariableOption,
CounterFilter, GlobalStepEvict).

    ev = vs.get_embedding_variable(
        "user_emb", embedding_dim=16,
        ev_option=vs.EmbeddingVariableOption(
            filter_option=vs.CounterFilter(filter_freq=3),
            evict_option=vs.GlobalStepEvict(steps_to_live=1000)))
    rows = vs.nn.embedding_lookup(ev, ids)        # any int64 ids
    opt.apply_gradients([(vs.IndexedSlices(grads, ids), ev)], global_step=gs)

A key the table does not hold gets its initializer's row, the same on every
worker and after every restart (a function of the initializer's seed and the
key). Below the filter frequency a key's row is returned but not stored, and
updates of it are dropped; a key not looked up or updated in steps_to_live
global steps is evicted from memory and disk (and starts again from its
initial row). On a cluster the keys spread over every shard.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from varscope import _varscope
from varscope import client
from varscope import dtypes
from varscope import initializers
from varscope import ops
from varscope.indexed_slices import IndexedSlices
from varscope.tensor_shape import TensorShape

_MODES = {True: 2}  # REUSE; AUTO_REUSE and CREATE below
_CREATE, _AUTO_REUSE = 1, 3


class CounterFilter:
    """Feature admission by frequency: a key is stored from its
    `filter_freq`-th lookup or update on (0 or 1: at once)."""

    def __init__(self, filter_freq: int = 0) -> None:
        if filter_freq < 0:
            raise ValueError("filter_freq must not be negative, got %d" %
                             filter_freq)
        self.filter_freq = int(filter_freq)


class GlobalStepEvict:
    """Eviction by global-step TTL: a key not looked up or updated in the
    last `steps_to_live` global steps is removed (None or 0: never)."""

    def __init__(self, steps_to_live: int | None = None) -> None:
        if steps_to_live is not None and steps_to_live < 0:
            raise ValueError("steps_to_live must not be negative, got %d" %
                             steps_to_live)
        self.steps_to_live = int(steps_to_live or 0)


class EmbeddingVariableOption:
    """DeepRec's options of an embedding variable. Varscope uses
    `filter_option` (a CounterFilter) and `evict_option` (a
    GlobalStepEvict); the others are accepted for compatibility: the server
    decides the hash table, and a memory budget (varscoped --memory-budget)
    keeps cold rows on disk."""

    def __init__(self, ht_type: Any = None, ht_partition_num: Any = None,
                 evict_option: GlobalStepEvict | None = None,
                 ckpt: Any = None,
                 filter_option: CounterFilter | None = None,
                 storage_option: Any = None, init_option: Any = None) -> None:
        del ht_type, ht_partition_num, ckpt, storage_option, init_option
        if evict_option is not None and not isinstance(evict_option,
                                                       GlobalStepEvict):
            raise TypeError("evict_option must be a GlobalStepEvict, not %r" %
                            (evict_option,))
        if filter_option is not None and not isinstance(filter_option,
                                                        CounterFilter):
            raise TypeError("filter_option must be a CounterFilter, not %r" %
                            (filter_option,))
        self.evict_option = evict_option
        self.filter_option = filter_option


class EmbeddingVariable:
    """A handle on an embedding variable (cheap; every call asks the
    server)."""

    def __init__(self, name: str, info: dict, value_dtype: dtypes.DType,
                 trainable: bool) -> None:
        self._shared_name = name
        self._embedding_dim = int(info["embedding_dim"])
        self._key_dtype = dtypes.as_dtype(
            np.int64 if info["key_dtype"] == dtypes.int64.as_datatype_enum
            else np.int32)
        self._dtype = value_dtype
        self._trainable = trainable
        self.filter_freq = info["filter_freq"]
        self.steps_to_live = info["steps_to_live"]

    @property
    def name(self) -> str:
        return self._shared_name + ":0"

    @property
    def op(self) -> Any:
        return self

    @property
    def dtype(self) -> dtypes.DType:
        return self._dtype

    @property
    def key_dtype(self) -> dtypes.DType:
        return self._key_dtype

    @property
    def shape(self) -> TensorShape:
        """[None, embedding_dim]: the table grows with the keys."""
        return TensorShape([None, self._embedding_dim])

    def get_shape(self) -> TensorShape:
        return self.shape

    @property
    def embedding_dim(self) -> int:
        return self._embedding_dim

    @property
    def trainable(self) -> bool:
        return self._trainable

    @property
    def constraint(self) -> None:
        return None

    def _keys(self, keys: Any) -> np.ndarray:
        array = np.asarray(keys)
        if array.dtype.kind not in "iu":
            raise TypeError(
                "Embedding keys must be integers, not %s" % array.dtype)
        return np.ascontiguousarray(array.astype(self._key_dtype.as_numpy_dtype,
                                                 copy=False))

    def sparse_read(self, indices: Any, name: str | None = None,
                    global_step: int | None = None) -> np.ndarray:
        """The rows of `indices` (integers of any shape): an array of shape
        indices.shape + [embedding_dim]. Counts a lookup of each key (for
        admission and eviction) at `global_step` (None: the variable's
        current step)."""
        del name
        keys = self._keys(indices)
        rows = _connection().embedding_lookup(
            self._shared_name, keys.reshape(-1), global_step=global_step,
            read_only=False)
        return rows.reshape(keys.shape + (self._embedding_dim,))

    def read(self, indices: Any) -> np.ndarray:
        """As sparse_read, without counting a lookup (inference)."""
        keys = self._keys(indices)
        rows = _connection().embedding_lookup(
            self._shared_name, keys.reshape(-1), global_step=None,
            read_only=True)
        return rows.reshape(keys.shape + (self._embedding_dim,))

    def size(self) -> int:
        """The number of keys stored (in memory and on disk, every shard)."""
        return int(_connection().embedding_stat(self._shared_name)["size"])

    def stats(self, hottest: int = 0) -> dict:
        """Counts and sizes (size, memory_keys, disk_keys, memory_bytes,
        disk_bytes, candidates, admitted, filtered, evicted, global_step)
        and the `hottest` most frequent keys as (key, frequency)."""
        return _connection().embedding_stat(self._shared_name, hottest)

    def export(self) -> tuple:
        """(keys, values, frequencies, last_steps) of every stored key."""
        return _connection().embedding_export(self._shared_name)

    def import_(self, keys: Any, values: Any, frequencies: Any = None,
                last_steps: Any = None) -> int:
        """Stores rows as given (admitted at once, replacing any);
        frequencies and last steps default to the filter frequency and the
        current step. Returns how many rows were stored."""
        keys = self._keys(keys).reshape(-1)
        values = np.ascontiguousarray(values, dtype=np.float32)
        as_int64 = (lambda a: None if a is None else
                    np.ascontiguousarray(a, dtype=np.int64))
        return _connection().embedding_import(
            self._shared_name, keys, values, as_int64(frequencies),
            as_int64(last_steps))

    def _apply(self, optimizer_spec: Any, grad: IndexedSlices,
               global_step: int | None) -> dict:
        """One sparse step of `optimizer_spec` (its inputs by value)."""
        keys = self._keys(grad.indices).reshape(-1)
        values = np.ascontiguousarray(grad.values, dtype=np.float32)
        if values.ndim != 2:
            values = values.reshape(len(keys), -1)
        return _connection().embedding_apply(
            self._shared_name, keys, values, optimizer=optimizer_spec,
            global_step=global_step)

    def __eq__(self, other: Any) -> bool:
        return (isinstance(other, EmbeddingVariable) and
                other._shared_name == self._shared_name)

    def __hash__(self) -> int:
        return hash(self._shared_name)

    def __repr__(self) -> str:
        return "<varscope.EmbeddingVariable '%s' embedding_dim=%d>" % (
            self.name, self._embedding_dim)


def _connection():
    return client.default_client()._connection()


def get_embedding_variable(name: str, embedding_dim: int,
                           key_dtype: Any = dtypes.int64,
                           value_dtype: Any = None, initializer: Any = None,
                           regularizer: Any = None, trainable: bool = True,
                           collections: Any = None, caching_device: Any = None,
                           partitioner: Any = None, validate_shape: bool = True,
                           custom_getter: Any = None, constraint: Any = None,
                           steps_to_live: int | None = None,
                           init_data_source: Any = None,
                           ev_option: EmbeddingVariableOption | None = None
                           ) -> EmbeddingVariable:
    """Gets or creates the embedding variable `name` in the current
    variable scope, as DeepRec's tf.get_embedding_variable, with
    get_variable's reuse rules and errors (an embedding variable and a dense
    variable never share a name).

    Args:
      name: the name in the scope.
      embedding_dim: the length of each row (> 0).
      key_dtype: int64 (default) or int32.
      value_dtype: float32 (None: float32).
      initializer: a varscope initializer (instance or class) for one row;
        None: the scope's, else truncated_normal with stddev
        1/sqrt(embedding_dim). Its seed (random if unset, fixed at creation)
        and the key decide each key's initial row.
      trainable: whether it joins TRAINABLE_VARIABLES.
      collections: the collections the handle joins (default
        [GLOBAL_VARIABLES]).
      partitioner: accepted for DeepRec compatibility: keys always spread
        over a cluster's shards by hash.
      steps_to_live: DeepRec's older spelling of
        GlobalStepEvict(steps_to_live).
      ev_option: an EmbeddingVariableOption.
      regularizer, caching_device, validate_shape, custom_getter,
      constraint, init_data_source: must be None (or their defaults).

    Raises:
      ValueError (errors.AlreadyExistsError, errors.NotFoundError,
      errors.InvalidArgumentError) with the server's texts; TypeError for an
      initializer that is not a varscope initializer.
    """
    del caching_device, validate_shape, partitioner
    # pylint: disable=import-outside-toplevel (they import this module)
    from varscope import variables
    from varscope.variable_scope import AUTO_REUSE
    from varscope.variable_scope import get_variable_scope
    variables.reject_unsupported(regularizer=regularizer,
                                 custom_getter=custom_getter,
                                 constraint=constraint,
                                 init_data_source=init_data_source)
    scope = get_variable_scope()
    full_name = scope.name + "/" + name if scope.name else name
    value_dtype = dtypes.float32 if value_dtype is None else dtypes.as_dtype(
        value_dtype)
    key_dtype = dtypes.as_dtype(key_dtype)
    if initializer is None:
        initializer = scope.initializer
    if isinstance(initializer, type):
        initializer = initializer()
    spec = None
    if initializer is not None:
        if not isinstance(initializer, initializers.Initializer):
            raise TypeError(
                "get_embedding_variable takes a varscope initializer (e.g. "
                "vs.random_normal_initializer()), not %r" % (initializer,))
        spec = initializer._spec([1, int(embedding_dim)], value_dtype)
    ev_option = ev_option or EmbeddingVariableOption()
    filter_freq = (ev_option.filter_option.filter_freq
                   if ev_option.filter_option else 0)
    if ev_option.evict_option is not None:
        steps_to_live = ev_option.evict_option.steps_to_live
    reuse = scope.reuse
    mode = _MODES.get(reuse, _AUTO_REUSE if reuse is AUTO_REUSE
                      else _CREATE)
    info = _connection().get_embedding_variable(
        full_name, mode=mode, embedding_dim=int(embedding_dim),
        key_dtype=key_dtype.as_datatype_enum,
        value_dtype=value_dtype.as_datatype_enum, initializer=spec,
        filter_freq=filter_freq, steps_to_live=int(steps_to_live or 0),
        trainable=bool(trainable))
    variable = EmbeddingVariable(full_name, info, value_dtype,
                                 bool(info["trainable"]))
    if reuse is not True:
        keys = list(collections) if collections is not None else [
            ops.GraphKeys.GLOBAL_VARIABLES]
        if trainable:
            keys.append(ops.GraphKeys.TRAINABLE_VARIABLES)
        for key in keys:
            if variable not in ops.get_collection(key):
                ops.add_to_collection(key, variable)
    return variable
