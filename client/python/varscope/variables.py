"""Variable and PartitionedVariable: handles on variables held by a server.

Handles are cheap, thread-safe and hold no value: every read and update is
one call to the server (one per part for a partitioned variable). Updates are
atomic on the server; for a partitioned variable each part's assign and
assign_add is atomic, the whole is not (as in TensorFlow), while scatter
updates of all its parts apply as one atomic batch.

A variable in the LOCAL_VARIABLES collection (get_local_variable, or
`collections=[..., LOCAL_VARIABLES]`) is the exception: it lives in this
process only, as a worker's local variables do in TensorFlow, and is read
and assigned locally; it cannot join server batches or optimizer steps.
"""

from __future__ import annotations

import concurrent.futures
import os
import re
import threading
from collections.abc import Iterable
from typing import Any

import numpy as np

from varscope import _varscope
from varscope import client
from varscope import constraints
from varscope import dtypes
from varscope import errors
from varscope import initializers
from varscope import ops
from varscope.indexed_slices import IndexedSlices
from varscope.tensor_shape import TensorShape


def reject_unsupported(**arguments: Any) -> None:
    """NotImplementedError naming the first argument that is not None."""
    for name, value in arguments.items():
        if value is not None:
            raise NotImplementedError(
                "Varscope does not support the %s argument." % name)


def root_scope(reuse: Any) -> _varscope.VariableScope:
    """A C++ root scope with `reuse` (a _varscope.Reuse), for a call that
    names a variable by its full name."""
    scope = _varscope.VariableScope()
    scope.reuse = reuse
    return scope


def variable_collections(collections: Any, trainable: bool) -> list:
    """The collections a new variable joins, as TensorFlow decides them:
    GLOBAL_VARIABLES unless `collections` is given (a list, tuple or set),
    plus TRAINABLE_VARIABLES when trainable."""
    if collections is None:
        collections = [ops.GraphKeys.GLOBAL_VARIABLES]
    if not isinstance(collections, (list, tuple, set)):
        raise ValueError(
            "collections argument to Variable constructor must be a list, "
            "tuple, or set. Got %s of type %s" %
            (collections, type(collections)))
    collections = list(collections)
    if trainable and ops.GraphKeys.TRAINABLE_VARIABLES not in collections:
        collections.append(ops.GraphKeys.TRAINABLE_VARIABLES)
    return collections


def is_local(collections: Iterable) -> bool:
    """Whether a variable in `collections` lives in this process only."""
    return ops.GraphKeys.LOCAL_VARIABLES in collections


def join_collections(variable: Any, collections: Iterable) -> None:
    """Adds a variable this process made to the collections it keeps itself
    (all of them for a local variable; see ops.PROCESS_KEYS)."""
    local = is_local(collections)
    ops.add_to_collections(
        [key for key in collections if local or not ops.is_server_key(key)],
        variable)


def _as_indices(indices, name):
    """`indices` as a 1-D int32 or int64 numpy array."""
    array = np.asarray(indices)
    if array.dtype not in (np.int32, np.int64):
        if array.size and array.dtype.kind not in "iu":
            raise TypeError("Indices for variable %s must be integers, got %s"
                            % (name, array.dtype))
        array = array.astype(np.int64)
    if array.ndim != 1:
        raise errors.InvalidArgumentError(
            None, None, "Indices for variable %s must be a 1-D int32 or int64 "
            "tensor, not %s of shape %s" % (name, array.dtype,
                                            TensorShape(array.shape)))
    return array


# The constraints this process applies itself, by variable name (TensorFlow
# keeps a constraint with the Python variable object).
_client_constraints: dict[str, Any] = {}
ops.on_reset(_client_constraints.clear)


def check_constraint(constraint: Any) -> None:
    """ValueError (TensorFlow's text) unless `constraint` is None, a
    built-in constraint (see varscope.constraints) or a callable."""
    if constraint is not None and not (
            callable(constraint) or
            isinstance(constraint, constraints.Constraint)):
        raise ValueError("The `constraint` argument must be a callable.")


def server_constraint(constraint: Any, local: bool) -> Any:
    """The spec of `constraint` the server stores and applies (a built-in
    one on a server variable), else None."""
    if isinstance(constraint, constraints.Constraint) and not local:
        return constraint._spec()
    return None


def keep_constraint(variable: Any, constraint: Any, local: bool) -> None:
    """Records `constraint` (unless None) as one this process applies after
    its optimizer steps on `variable`, when the server does not keep it
    (see server_constraint)."""
    if constraint is not None and server_constraint(constraint,
                                                    local) is None:
        _client_constraints[variable._shared_name] = constraint


def client_constraint(variable: Any) -> Any:
    """The constraint this process keeps for `variable`, or None."""
    return _client_constraints.get(variable._shared_name)


def check_rows(indices: np.ndarray, name: str, rows: int) -> None:
    """InvalidArgumentError (the server's text) for the first of `indices`
    outside [0, rows) of variable `name`."""
    bad = np.flatnonzero((indices < 0) | (indices >= rows))
    if bad.size:
        i = int(bad[0])
        raise errors.InvalidArgumentError(
            None, None, "Index %d at position %d is out of range for "
            "variable %s with %d rows" % (indices[i], i, name, rows))


def apply_updates(pairs, return_values=False):
    """Applies [(variable handle, UpdateSpec)] as one atomic batch on the
    handles' client; records the new versions on the handles. Returns the
    new values when `return_values`, else None."""
    if not pairs:
        return [] if return_values else None
    connection = pairs[0][0].client
    if any(impl.client is not connection for impl, _ in pairs):
        raise ValueError("A batch applies to the variables of one client")
    client._check_process()
    versions, values = connection.batch_update(
        [spec for _, spec in pairs], return_values)
    for (impl, _), version in zip(pairs, versions):
        impl.see_version(version)
    return values if return_values else None


class _VariableBase:
    """What Variable and PartitionedVariable share."""

    def __init__(self, impl):
        self._impl = impl

    def _handle(self):
        """The C++ handle, for a call (see client._check_process)."""
        client._check_process()
        return self._impl

    @property
    def _shared_name(self):
        """The full name in the store (no ":0")."""
        return self._impl.name

    @property
    def shape(self):
        """The (full) shape, a TensorShape: compares equal to a tuple."""
        return TensorShape(self._impl.shape)

    def get_shape(self):
        return self.shape

    @property
    def dtype(self):
        return dtypes.as_dtype(self._impl.dtype)

    @property
    def trainable(self):
        return self._impl.trainable

    @property
    def constraint(self):
        """The variable's constraint: a built-in one stored with it (a
        varscope.constraints.Constraint), the callable this process gave
        get_variable, or None."""
        return client_constraint(self) or \
            constraints.from_server(self._impl.constraint)

    @property
    def created(self):
        """True if the get_variable call that returned this handle created
        the variable (exactly one of racing callers sees True)."""
        return self._impl.created

    @property
    def version(self):
        """The highest version this handle has seen: 1 at creation, +1 per
        update (for a partitioned variable, the highest over its parts)."""
        return self._impl.version

    def read(self) -> np.ndarray:
        """The current value: a numpy array of `dtype.as_numpy_dtype` and
        `shape` (float32 for bfloat16 variables)."""
        return self._handle().read()

    numpy = read
    read_value = read

    def __array__(self, dtype=None, copy=None):
        value = self.read()
        return value if dtype is None else value.astype(dtype)

    def assign(self, value: Any, use_locking: Any = None,
               name: str | None = None, read_value: bool = True,
               expected_version: int | None = None) -> Any:
        """Replaces the value with `value` (array-like of the variable's
        shape, converted to its dtype as dtypes.to_numpy does).

        Returns the new value (numpy) if `read_value` (TensorFlow's default:
        the value travels back; pass read_value=False to save that), else
        self. With
        `expected_version`, applies only if the variable is at that version
        (errors.AbortedError otherwise, and nothing changes). Raises
        errors.InvalidArgumentError for a shape mismatch, TypeError or
        ValueError for a value that does not convert. `use_locking` and
        `name` are accepted for compatibility: updates are always atomic.
        """
        return self._update(self._handle().assign, value, read_value,
                            expected_version)

    def assign_add(self, delta: Any, use_locking: Any = None,
                   name: str | None = None, read_value: bool = True,
                   expected_version: int | None = None) -> Any:
        """Adds `delta` element-wise, atomically on the server; as assign."""
        return self._update(self._handle().assign_add, delta, read_value,
                            expected_version)

    def assign_sub(self, delta: Any, use_locking: Any = None,
                   name: str | None = None, read_value: bool = True,
                   expected_version: int | None = None) -> Any:
        """Subtracts `delta` element-wise; as assign_add."""
        negated = -dtypes.to_numpy(delta, self.dtype)
        return self._update(self._handle().assign_add, negated, read_value,
                            expected_version)

    def _update(self, op, value, read_value, expected_version):
        new_value = op(dtypes.to_numpy(value, self.dtype), read_value,
                       expected_version)
        return new_value if read_value else self

    def sparse_read(self, indices: Any, name: str | None = None) -> np.ndarray:
        """Rows by index along the first axis, as tf.gather: a numpy array
        of shape [len(indices)] + shape[1:]. Raises InvalidArgumentError for
        an index out of range."""
        indices = _as_indices(indices, self._shared_name)
        return self._gather(indices)

    def scatter_add(self, sparse_delta: IndexedSlices, use_locking: bool = False,
                    name: str | None = None) -> "_VariableBase":
        """Adds IndexedSlices rows to the rows they name (duplicates are
        summed), atomically; returns self. Raises InvalidArgumentError for
        an index out of range, and then nothing changes."""
        apply_updates(self._sparse_specs("scatter_add", sparse_delta))
        return self

    def scatter_sub(self, sparse_delta: IndexedSlices, use_locking: bool = False,
                    name: str | None = None) -> "_VariableBase":
        """Subtracts IndexedSlices rows; as scatter_add."""
        apply_updates(self._sparse_specs("scatter_add", sparse_delta,
                                         negate=True))
        return self

    def scatter_update(self, sparse_delta: IndexedSlices,
                       use_locking: bool = False,
                       name: str | None = None) -> "_VariableBase":
        """Replaces the rows IndexedSlices name (for a duplicate index the
        last row wins); as scatter_add."""
        apply_updates(self._sparse_specs("scatter_update", sparse_delta))
        return self

    def _sparse_specs(self, kind, sparse_delta, negate=False, optimizer=None):
        """_specs for IndexedSlices."""
        if not isinstance(sparse_delta, IndexedSlices):
            raise TypeError("Expected IndexedSlices, got %r" % (sparse_delta,))
        rows = dtypes.to_numpy(sparse_delta.values, self.dtype)
        return self._specs(kind, -rows if negate else rows,
                           indices=sparse_delta.indices, optimizer=optimizer)

    def _specs(self, kind, value, indices=None, optimizer=None,
               expected_version=None):
        """[(part handle, UpdateSpec)] applying `kind` of `value` (dense,
        or rows for `indices`) to this variable."""
        raise NotImplementedError


class Variable(_VariableBase):
    """One variable (or one part of a partitioned variable).

    `Variable(initial_value, ...)` makes one as tf.compat.v1.Variable does:
    its name is `name` (default "Variable") under the current name scope,
    made unique in this process (`Variable`, `Variable_1`, ...); it joins
    `collections` (default GLOBAL_VARIABLES) and, when `trainable` (default
    True), TRAINABLE_VARIABLES. It is got or created on the server under
    that name (AUTO_REUSE): workers that make `Variable(0, name="counter")`
    share one `counter`, whose value is the first creator's; a shape or
    dtype that differs from the existing variable's raises ValueError.

    Args (TensorFlow's, in its order):
      initial_value: a value, numpy array or Variable, or a callable
        returning one (called once, in this process).
      trainable, collections, name: as above. A variable in
        LOCAL_VARIABLES lives in this process only.
      dtype: converts the initial value; None: TensorFlow's conversion
        (numpy dtypes kept, Python floats float32, ints int32).
      shape: checked to be compatible with the initial value's.
      validate_shape, caching_device, expected_shape, use_resource,
      synchronization, aggregation: accepted, without effect.
      constraint: as get_variable's (a built-in one is stored with a new
        variable and applied by the server).
      variable_def, import_scope: not supported (NotImplementedError
        unless None).

    Raises ValueError with TensorFlow's texts for a missing initial value,
    bad collections, a bad name or an incompatible shape.
    """

    def __init__(self, initial_value: Any = None, trainable: bool | None = None,
                 collections: Any = None, validate_shape: bool = True,
                 caching_device: Any = None, name: str | None = None,
                 variable_def: Any = None, dtype: Any = None,
                 expected_shape: Any = None, import_scope: Any = None,
                 constraint: Any = None, use_resource: Any = None,
                 synchronization: Any = None, aggregation: Any = None,
                 shape: Any = None) -> None:
        reject_unsupported(variable_def=variable_def,
                           import_scope=import_scope)
        check_constraint(constraint)
        if initial_value is None:
            raise ValueError("initial_value must be specified.")
        trainable = True if trainable is None else bool(trainable)
        collections = variable_collections(collections, trainable)
        if callable(initial_value):
            initial_value = initial_value()
        dtype = (dtypes.infer_dtype(initial_value) if dtype is None else
                 dtypes.as_dtype(dtype))
        value = dtypes.to_numpy(initial_value, dtype)
        if shape is not None and not TensorShape(
                value.shape).is_compatible_with(shape):
            raise ValueError(
                "The initial value's shape (%s) is not compatible with the "
                "explicitly supplied `shape` argument (%s)." %
                (TensorShape(value.shape), TensorShape(shape)))
        with ops.name_scope(name, "Variable") as scope:
            full_name = scope[:-1]
        local = is_local(collections)
        if local:
            impl = LocalImpl(full_name, value, dtype, trainable)
        else:
            impl = _varscope.get_variable(
                client.default_client()._connection(),
                root_scope(_varscope.Reuse.AUTO_REUSE), full_name,
                shape=list(value.shape), dtype=dtype.as_datatype_enum,
                initializer=initializers.constant_spec(value),
                trainable=trainable, partitioner=None,
                constraint=server_constraint(constraint, local),
                collections=[key for key in collections
                             if ops.is_server_key(key)])
        super().__init__(impl)
        keep_constraint(self, constraint, local)
        join_collections(self, collections)
        ops.note_created(full_name, trainable)

    @classmethod
    def _from_impl(cls, impl: Any) -> "Variable":
        """A handle on an existing variable (a _varscope.Variable or a
        LocalImpl)."""
        variable = cls.__new__(cls)
        _VariableBase.__init__(variable, impl)
        return variable

    @property
    def name(self):
        """TensorFlow's name: the full name and ":0", e.g. "scope/w:0"."""
        return self._impl.name + ":0"

    def __repr__(self):
        return "<varscope.Variable '%s' shape=%s dtype=%s>" % (
            self.name, self.shape, self.dtype.name)

    def _gather(self, indices):
        impl = self._handle()
        if isinstance(impl, LocalImpl):
            return impl.gather(indices)
        rows, version = impl.client.gather(impl.name, indices)
        impl.see_version(version)
        return rows

    def _specs(self, kind, value, indices=None, optimizer=None,
               expected_version=None):
        if isinstance(self._impl, LocalImpl):
            raise errors.FailedPreconditionError(
                None, None, "Variable %s is local to this process "
                "(LOCAL_VARIABLES): it cannot join server batches, scatter "
                "updates or optimizer steps" % self._impl.name)
        value = dtypes.to_numpy(value, self.dtype)
        if indices is not None:
            indices = _as_indices(indices, self._impl.name)
        return [(self._handle(), _varscope.UpdateSpec(
            self._impl.name, kind, value, self._impl.dtype, indices=indices,
            optimizer=optimizer, expected_version=expected_version))]


class LocalImpl:
    """The state of a process-local variable. It offers what Variable uses
    of the C++ handle _varscope.Variable (name, dtype enum, shape, read,
    assign, assign_add, ...), with the server's error texts. Thread-safe:
    each update is atomic."""

    partitioned = False
    parts: tuple = ()
    partitions: tuple = ()
    created = True
    client = None
    constraint = None  # a constraint is kept by the process (keep_constraint)

    def __init__(self, name: str, value: np.ndarray, dtype: dtypes.DType,
                 trainable: bool) -> None:
        self.name = name
        self.dtype = dtype.as_datatype_enum
        self.shape = list(value.shape)
        self.trainable = trainable
        self._lock = threading.Lock()
        self._value = np.array(value, dtype=dtype.as_numpy_dtype)
        self._version = 1

    @property
    def version(self) -> int:
        with self._lock:
            return self._version

    def see_version(self, version: int) -> None:
        del version  # Only this object changes the value.

    def read(self) -> np.ndarray:
        with self._lock:
            return self._value.copy()

    def assign(self, value, return_value, expected_version):
        return self._update("assign", value, return_value, expected_version)

    def assign_add(self, delta, return_value, expected_version):
        return self._update("assign_add", delta, return_value,
                            expected_version)

    def _update(self, op, value, return_value, expected_version):
        if list(value.shape) != self.shape:
            raise errors.InvalidArgumentError(
                None, None, "Cannot %s a tensor of shape %s to variable %s of "
                "shape %s" % (op, TensorShape(value.shape), self.name,
                              TensorShape(self.shape)))
        with self._lock:
            if (expected_version is not None and
                    expected_version != self._version):
                raise errors.AbortedError(
                    None, None, "Variable %s is at version %d, not the "
                    "expected version %d" % (self.name, self._version,
                                             expected_version))
            new = value if op == "assign" else self._value + value
            self._value = new.astype(self._value.dtype)
            self._version += 1
            return self._value.copy() if return_value else None

    def gather(self, indices: np.ndarray) -> np.ndarray:
        check_rows(indices, self.name, self.shape[0] if self.shape else 0)
        with self._lock:
            return self._value[indices]


# The threads in_parallel runs calls on: made once, not per call (a read of
# a partitioned variable is on the training step's path), and made anew in
# a forked child, which has none of its parent's threads.
_pool = None
_pool_lock = threading.Lock()
_on_pool_thread = threading.local()


def _forget_pool():
    global _pool, _pool_lock
    _pool, _pool_lock = None, threading.Lock()


os.register_at_fork(after_in_child=_forget_pool)


def _shared_pool():
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = concurrent.futures.ThreadPoolExecutor(
                32, thread_name_prefix="varscope",
                initializer=lambda: setattr(_on_pool_thread, "yes", True))
        return _pool


def in_parallel(calls: list) -> list:
    """The results of `calls` (functions of no argument), called at once on
    threads of their own when there are several: the parts of a partitioned
    variable are on several shards of a cluster, and the client's calls
    release the GIL. The first exception raised, in the order of `calls`,
    propagates. Called from one of those threads it runs the calls in turn,
    so that no call waits for a thread its caller holds."""
    if len(calls) < 2 or getattr(_on_pool_thread, "yes", False):
        return [call() for call in calls]
    futures = [_shared_pool().submit(call) for call in calls]
    return [future.result() for future in futures]


class PartitionedVariable(_VariableBase):
    """A variable split into parts `name/part_0` .. `name/part_<n-1>` along
    one axis; reads and updates apply to the whole, part by part.

    Iterating or indexing gives the parts as Variables.
    """

    def __init__(self, impl):
        super().__init__(impl)
        self._parts = [Variable._from_impl(part) for part in impl.parts]

    @property
    def name(self):
        """The full name, without ":0" (as TensorFlow)."""
        return self._impl.name

    def __len__(self):
        return len(self._parts)

    def __iter__(self):
        return iter(self._parts)

    def __getitem__(self, index):
        return self._parts[index]

    def _get_variable_list(self):
        return list(self._parts)

    def _get_partitions(self):
        """Parts per axis, e.g. [3, 1]."""
        return list(self._impl.partitions)

    def __repr__(self):
        return ("<varscope.PartitionedVariable '%s' shape=%s dtype=%s "
                "parts=%d>" % (self.name, self.shape, self.dtype.name,
                               len(self)))

    def _axis(self):
        """The axis the parts split, and each part's first index on it."""
        partitions = self._get_partitions()
        axis = next((i for i, n in enumerate(partitions) if n > 1), 0)
        sizes = [part.shape[axis] for part in self._parts]
        return axis, np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)

    def _by_part(self, indices):
        """For rows `indices` of the whole (partitioned on axis 0): per
        part, the positions in `indices` of its rows and their local
        indices. InvalidArgumentError (the server's text) for an index out
        of range."""
        _, starts = self._axis()
        check_rows(indices, self.name, int(starts[-1]))
        owner = np.searchsorted(starts, indices, side="right") - 1
        for p in range(len(self._parts)):
            positions = np.flatnonzero(owner == p)
            if positions.size:
                yield p, positions, indices[positions] - starts[p]

    def _gather(self, indices):
        axis, _ = self._axis()
        if axis != 0:
            return np.concatenate(
                in_parallel([lambda part=part: part._gather(indices)
                             for part in self._parts]), axis=axis)
        out = np.empty((len(indices),) + tuple(self.shape[1:]),
                       dtype=self.dtype.as_numpy_dtype)
        pieces = list(self._by_part(indices))
        rows = in_parallel([lambda p=p, local=local: self._parts[p]._gather(
            local) for p, _, local in pieces])
        for (_, positions, _), got in zip(pieces, rows):
            out[positions] = got
        return out

    def _specs(self, kind, value, indices=None, optimizer=None,
               expected_version=None):
        if expected_version is not None:
            raise errors.InvalidArgumentError(
                None, None, "Cannot expect a version of partitioned variable "
                "%s: its parts have their own versions" % self.name)
        value = dtypes.to_numpy(value, self.dtype)
        axis, starts = self._axis()
        if indices is None or axis != 0:
            if indices is not None:
                indices = _as_indices(indices, self.name)
            elif value.shape != tuple(self.shape):
                raise errors.InvalidArgumentError(
                    None, None, "Cannot apply a tensor of shape %s to "
                    "partitioned variable %s of shape %s" % (
                        TensorShape(value.shape), self.name, self.shape))
            pieces = np.split(value, starts[1:-1], axis=axis)
            return [spec for part, piece in zip(self._parts, pieces)
                    for spec in part._specs(kind, piece, indices, optimizer)]
        indices = _as_indices(indices, self.name)
        if value.ndim == 0 or value.shape[0] != len(indices):
            raise errors.InvalidArgumentError(
                None, None, "Cannot apply rows of shape %s for %d indices to "
                "partitioned variable %s" % (TensorShape(value.shape),
                                             len(indices), self.name))
        return [spec for p, positions, local in self._by_part(indices)
                for spec in self._parts[p]._specs(
                    kind, value[positions], local, optimizer)]


def wrap(impl):
    """The Variable or PartitionedVariable of a _varscope.Variable."""
    if impl.partitioned:
        return PartitionedVariable(impl)
    return Variable._from_impl(impl)


def collections_of(impl: Any) -> list:
    """The collections a server variable was created in (TensorFlow's
    default when it recorded none: created before collections were stored,
    or by the server itself, as optimizer slots are)."""
    stored = impl.collections
    if stored is not None:
        return stored
    return variable_collections(None, impl.trainable)


_PART = re.compile(r"^(.*)/part_(\d+)$")


def _listing_order(impl: Any) -> tuple:
    """Name order, with a partitioned variable's parts in part order."""
    match = _PART.match(impl.name)
    if match:
        return match.group(1), int(match.group(2))
    return impl.name, -1


def server_collection(key: str) -> list:
    """The server's variables stored in collection `key`, as Variables (a
    partitioned variable's parts one by one), in name order."""
    handles = client.default_client()._connection().list_handles("", True)
    return [Variable._from_impl(impl)
            for impl in sorted(handles, key=_listing_order)
            if key in collections_of(impl)]


class CastView:
    """What tf.cast of a variable gives: the variable's value converted to
    `dtype` at every read (e.g. a float16 view of float32 master weights,
    as mixed-precision custom getters return). Read-only."""

    def __init__(self, variable: Any, dtype: Any) -> None:
        self.variable = variable
        self.dtype = dtypes.as_dtype(dtype)

    @property
    def name(self) -> str:
        """The name of the variable it reads."""
        return self.variable.name

    @property
    def shape(self) -> TensorShape:
        return self.variable.shape

    def get_shape(self) -> TensorShape:
        return self.shape

    def read(self) -> np.ndarray:
        """The variable's current value as a numpy array of `dtype`."""
        return np.asarray(self.variable.read()).astype(
            self.dtype.as_numpy_dtype)

    numpy = read
    read_value = read

    def __array__(self, dtype=None, copy=None):
        value = self.read()
        return value if dtype is None else value.astype(dtype)

    def __repr__(self):
        return "<varscope.CastView of %s dtype=%s>" % (self.name,
                                                       self.dtype.name)


def cast(x: Any, dtype: Any, name: str | None = None) -> Any:
    """tf.cast: a CastView of a Variable or PartitionedVariable (read at
    every use), else `x` converted now to a numpy array of `dtype`
    (float32 for bfloat16)."""
    del name  # No op to name.
    if isinstance(x, (_VariableBase, CastView)):
        return CastView(x, dtype)
    return np.asarray(x).astype(dtypes.as_dtype(dtype).as_numpy_dtype)
