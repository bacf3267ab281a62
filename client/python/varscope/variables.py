"""Variable and PartitionedVariable: handles on variables held by a server.

Handles are cheap, thread-safe and hold no value: every read and update is
one call to the server (one per part for a partitioned variable). Updates are
atomic on the server; for a partitioned variable each part's update is
atomic, the whole is not (as in TensorFlow).
"""

from varscope import client
from varscope import dtypes
from varscope.tensor_shape import TensorShape


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

    def assign(self, value, use_locking=None, name=None, read_value=False):
        """Replaces the value with `value` (array-like of the variable's
        shape, converted to its dtype as dtypes.to_numpy does).

        Returns the new value (numpy) if `read_value`, else self. Raises
        errors.InvalidArgumentError for a shape mismatch, TypeError or
        ValueError for a value that does not convert. `use_locking` and
        `name` are accepted for compatibility: updates are always atomic.
        """
        return self._update(self._handle().assign, value, read_value)

    def assign_add(self, delta, use_locking=None, name=None,
                   read_value=False):
        """Adds `delta` element-wise, atomically on the server; as assign."""
        return self._update(self._handle().assign_add, delta,
                            read_value)

    def assign_sub(self, delta, use_locking=None, name=None,
                   read_value=False):
        """Subtracts `delta` element-wise; as assign_add."""
        negated = -dtypes.to_numpy(delta, self.dtype)
        return self._update(self._handle().assign_add, negated,
                            read_value)

    def _update(self, op, value, read_value):
        new_value = op(dtypes.to_numpy(value, self.dtype), read_value)
        return new_value if read_value else self


class Variable(_VariableBase):
    """One variable (or one part of a partitioned variable)."""

    @property
    def name(self):
        """TensorFlow's name: the full name and ":0", e.g. "scope/w:0"."""
        return self._impl.name + ":0"

    def __repr__(self):
        return "<varscope.Variable '%s' shape=%s dtype=%s>" % (
            self.name, self.shape, self.dtype.name)


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


def wrap(impl):
    """The Variable or PartitionedVariable of a _varscope.Variable."""
    return PartitionedVariable(impl) if impl.partitioned else Variable(impl)
