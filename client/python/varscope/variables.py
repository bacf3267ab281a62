"""Variable and PartitionedVariable: handles on variables held by a server.

Handles are cheap, thread-safe and hold no value: every read and update is
one call to the server (one per part for a partitioned variable). Updates are
atomic on the server; for a partitioned variable each part's assign and
assign_add is atomic, the whole is not (as in TensorFlow), while scatter
updates of all its parts apply as one atomic batch.
"""

import numpy as np

from varscope import _varscope
from varscope import client
from varscope import constraints
from varscope import dtypes
from varscope import errors
from varscope.indexed_slices import IndexedSlices
from varscope.tensor_shape import TensorShape


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


def set_client_constraint(variable, constraint):
    """Records a callable constraint of `variable` (a handle) for this
    process, which applies it after its optimizer steps (TensorFlow keeps a
    constraint with the Python variable object)."""
    client.graph_state("constraints")[variable._shared_name] = constraint


def client_constraint(variable):
    """The callable constraint this process gave `variable`, or None."""
    return client.graph_state("constraints").get(variable._shared_name)


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

    def read(self):
        """The current value: a numpy array of `dtype.as_numpy_dtype` and
        `shape` (float32 for bfloat16 variables)."""
        return self._handle().read()

    numpy = read
    read_value = read

    def __array__(self, dtype=None, copy=None):
        value = self.read()
        return value if dtype is None else value.astype(dtype)

    def assign(self, value, use_locking=None, name=None, read_value=False,
               expected_version=None):
        """Replaces the value with `value` (array-like of the variable's
        shape, converted to its dtype as dtypes.to_numpy does).

        Returns the new value (numpy) if `read_value`, else self. With
        `expected_version`, applies only if the variable is at that version
        (errors.AbortedError otherwise, and nothing changes). Raises
        errors.InvalidArgumentError for a shape mismatch, TypeError or
        ValueError for a value that does not convert. `use_locking` and
        `name` are accepted for compatibility: updates are always atomic.
        """
        return self._update(self._handle().assign, value, read_value,
                            expected_version)

    def assign_add(self, delta, use_locking=None, name=None,
                   read_value=False, expected_version=None):
        """Adds `delta` element-wise, atomically on the server; as assign."""
        return self._update(self._handle().assign_add, delta, read_value,
                            expected_version)

    def assign_sub(self, delta, use_locking=None, name=None,
                   read_value=False, expected_version=None):
        """Subtracts `delta` element-wise; as assign_add."""
        negated = -dtypes.to_numpy(delta, self.dtype)
        return self._update(self._handle().assign_add, negated, read_value,
                            expected_version)

    def _update(self, op, value, read_value, expected_version):
        new_value = op(dtypes.to_numpy(value, self.dtype), read_value,
                       expected_version)
        return new_value if read_value else self

    def sparse_read(self, indices, name=None):
        """Rows by index along the first axis, as tf.gather: a numpy array
        of shape [len(indices)] + shape[1:]. Raises InvalidArgumentError for
        an index out of range."""
        indices = _as_indices(indices, self._shared_name)
        return self._gather(indices)

    def scatter_add(self, sparse_delta, use_locking=False, name=None):
        """Adds IndexedSlices rows to the rows they name (duplicates are
        summed), atomically; returns self. Raises InvalidArgumentError for
        an index out of range, and then nothing changes."""
        apply_updates(self._sparse_specs("scatter_add", sparse_delta))
        return self

    def scatter_sub(self, sparse_delta, use_locking=False, name=None):
        """Subtracts IndexedSlices rows; as scatter_add."""
        apply_updates(self._sparse_specs("scatter_add", sparse_delta,
                                         negate=True))
        return self

    def scatter_update(self, sparse_delta, use_locking=False, name=None):
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
    """One variable (or one part of a partitioned variable)."""

    @property
    def name(self):
        """TensorFlow's name: the full name and ":0", e.g. "scope/w:0"."""
        return self._impl.name + ":0"

    def __repr__(self):
        return "<varscope.Variable '%s' shape=%s dtype=%s>" % (
            self.name, self.shape, self.dtype.name)

    def _gather(self, indices):
        rows, version = self._handle().client.gather(self._impl.name, indices)
        self._impl.see_version(version)
        return rows

    def _specs(self, kind, value, indices=None, optimizer=None,
               expected_version=None):
        value = dtypes.to_numpy(value, self.dtype)
        if indices is not None:
            indices = _as_indices(indices, self._impl.name)
        return [(self._handle(), _varscope.UpdateSpec(
            self._impl.name, kind, value, self._impl.dtype, indices=indices,
            optimizer=optimizer, expected_version=expected_version))]


class PartitionedVariable(_VariableBase):
    """A variable split into parts `name/part_0` .. `name/part_<n-1>` along
    one axis; reads and updates apply to the whole, part by part.

    Iterating or indexing gives the parts as Variables.
    """

    def __init__(self, impl):
        super().__init__(impl)
        self._parts = [Variable(part) for part in impl.parts]

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
        rows = int(starts[-1])
        bad = np.flatnonzero((indices < 0) | (indices >= rows))
        if bad.size:
            i = int(bad[0])
            raise errors.InvalidArgumentError(
                None, None, "Index %d at position %d is out of range for "
                "variable %s with %d rows" % (indices[i], i, self.name, rows))
        owner = np.searchsorted(starts, indices, side="right") - 1
        for p in range(len(self._parts)):
            positions = np.flatnonzero(owner == p)
            if positions.size:
                yield p, positions, indices[positions] - starts[p]

    def _gather(self, indices):
        axis, _ = self._axis()
        if axis != 0:
            return np.concatenate(
                [part._gather(indices) for part in self._parts], axis=axis)
        out = np.empty((len(indices),) + tuple(self.shape[1:]),
                       dtype=self.dtype.as_numpy_dtype)
        for p, positions, local in self._by_part(indices):
            out[positions] = self._parts[p]._gather(local)
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
    return PartitionedVariable(impl) if impl.partitioned else Variable(impl)
