"""TensorFlow's variable_scope, get_variable_scope and get_variable.

Scope names, reuse inheritance and default_name uniquifying are those of the
C++ client's ScopeStack (one per thread, as TensorFlow's scope stack is per
thread and graph): reuse=True is sticky in child scopes, reuse=False/None
inherits, AUTO_REUSE under True stays AUTO_REUSE, a re-entered captured scope
keeps its own reuse, default_name gives name, name_1, name_2...

get_variable sends the full name, the scope's reuse mode, the shape, dtype,
initializer and partitioner to the server, which creates or returns the
variable atomically and raises TensorFlow's errors with TensorFlow's texts.

Arguments without meaning here are accepted and ignored where TensorFlow's
semantics allow it (values, caching_device, use_resource, collections,
validate_shape, synchronization, aggregation, auxiliary_name_scope); those
whose effect Varscope does not implement (regularizer, custom_getter) raise
NotImplementedError when given. constraint= takes Keras' built-in
constraints (applied by the server, see varscope.constraints) or any
callable (applied by the client after apply_gradients).
"""

from collections.abc import Iterable
from collections.abc import Sequence
import enum
import inspect
import threading

from varscope import _varscope
from varscope import constraints
from varscope import dtypes
from varscope import initializers
from varscope import partitioners
from varscope import variables
from varscope.client import default_client
from varscope.client import graph_state
from varscope.tensor_shape import TensorShape


class _ReuseMode(enum.Enum):
    """TensorFlow's reuse mode besides True and False."""
    AUTO_REUSE = 1


AUTO_REUSE = _ReuseMode.AUTO_REUSE

_REUSE_TO_CPP = {True: _varscope.Reuse.TRUE,
                 AUTO_REUSE: _varscope.Reuse.AUTO_REUSE}
_REUSE_FROM_CPP = {_varscope.Reuse.FALSE: False, _varscope.Reuse.TRUE: True,
                   _varscope.Reuse.AUTO_REUSE: AUTO_REUSE}


def _reject_unsupported(**arguments):
    for name, value in arguments.items():
        if value is not None:
            raise NotImplementedError(
                "Varscope does not support the %s argument." % name)


class VariableScope:
    """A variable scope, as TensorFlow's VariableScope.

    `name` and `reuse` (False, True or AUTO_REUSE) decide the full names and
    the mode of get_variable calls in the scope; `initializer`, `dtype` and
    `partitioner` are their defaults. Obtained from variable_scope() or
    get_variable_scope(), and re-entered by passing it to variable_scope().
    """

    def __init__(self, impl, initializer=None, partitioner=None,
                 constraint=None):
        self._impl = impl
        self._initializer = initializer
        self._partitioner = partitioner
        self._constraint = constraint

    @property
    def name(self):
        return self._impl.name

    @property
    def reuse(self):
        return _REUSE_FROM_CPP[self._impl.reuse]

    @property
    def initializer(self):
        return self._initializer

    @property
    def dtype(self):
        return dtypes.as_dtype(self._impl.dtype)

    @property
    def partitioner(self):
        return self._partitioner

    @property
    def constraint(self):
        return self._constraint

    def reuse_variables(self):
        """Makes this scope reuse from now on (cannot be undone)."""
        self._impl.reuse_variables()

    def set_initializer(self, initializer):
        self._initializer = initializer

    def set_dtype(self, dtype):
        self._impl.dtype = dtypes.as_dtype(dtype).as_datatype_enum

    def set_partitioner(self, partitioner):
        self._partitioner = partitioner

    def set_constraint(self, constraint):
        self._constraint = constraint

    def __repr__(self):
        return "<varscope.VariableScope '%s' reuse=%s>" % (self.name,
                                                           self.reuse)


class _ThreadScopes(threading.local):
    """The scopes entered by one thread: the C++ stack, and the Python
    scope objects of its frames (the root first)."""

    def __init__(self):
        super().__init__()
        self.stack = _varscope.ScopeStack()
        self.entered = [VariableScope(self.stack.current())]


_scopes = _ThreadScopes()


def get_variable_scope():
    """The current thread's innermost scope (the root if none is entered)."""
    return _scopes.entered[-1]


class variable_scope:  # pylint: disable=invalid-name
    """A context manager entering a variable scope, as TensorFlow's.

    Args (TensorFlow's, in its order):
      name_or_scope: a name (appended to the current scope's), a
        VariableScope to re-enter (its name as is), or None to use
        `default_name`.
      default_name: when name_or_scope is None, the name to uniquify
        (name, name_1, ...).
      initializer, partitioner, dtype, constraint: defaults for
        get_variable in the scope; None inherits them from the parent (or
        re-entered) scope.
      reuse: True, AUTO_REUSE, or False/None to inherit.
      values, caching_device, use_resource, auxiliary_name_scope: accepted,
        without effect.
      regularizer, custom_getter: not supported (NotImplementedError
        unless None).

    Raises TypeError, ValueError and RuntimeError with TensorFlow's texts for
    a missing name, a bad reuse, reuse without a name, and exits out of
    order.
    """

    def __init__(self, name_or_scope, default_name=None, values=None,
                 initializer=None, regularizer=None, caching_device=None,
                 partitioner=None, custom_getter=None, reuse=None, dtype=None,
                 use_resource=None, constraint=None,
                 auxiliary_name_scope=True):
        if default_name is None and name_or_scope is None:
            raise TypeError(
                "If default_name is None then name_or_scope is required")
        if reuse is False:
            reuse = None
        if reuse not in (True, None, AUTO_REUSE):
            raise ValueError("The reuse parameter must be True or False or "
                             "None.")
        if not isinstance(auxiliary_name_scope, bool):
            raise TypeError("The auxiliary_name_scope must be `True` or "
                            "`False`, while get {}".format(
                                auxiliary_name_scope))
        _reject_unsupported(regularizer=regularizer,
                            custom_getter=custom_getter)
        self._name_or_scope = name_or_scope
        self._default_name = default_name
        self._initializer = initializer
        self._partitioner = partitioner
        self._constraint = constraint
        self._reuse = reuse
        self._dtype = None if dtype is None else dtypes.as_dtype(dtype)
        self._entered = None

    def __enter__(self):
        kwargs = {"reuse": _REUSE_TO_CPP.get(self._reuse)}
        if self._dtype is not None:
            kwargs["dtype"] = self._dtype.as_datatype_enum
        if isinstance(self._name_or_scope, VariableScope):
            base = self._name_or_scope
            kwargs["scope"] = base._impl
        elif isinstance(self._name_or_scope, str):
            base = get_variable_scope()
            kwargs["name"] = self._name_or_scope
        elif self._name_or_scope is None:
            base = get_variable_scope()
            kwargs["default_name"] = self._default_name
        else:
            raise TypeError("VariableScope: name_or_scope must be a string or "
                            "VariableScope.")
        impl = _scopes.stack.enter(**kwargs)
        self._entered = VariableScope(
            impl,
            initializer=(base.initializer if self._initializer is None else
                         self._initializer),
            partitioner=(base.partitioner if self._partitioner is None else
                         self._partitioner),
            constraint=(base.constraint if self._constraint is None else
                        self._constraint))
        _scopes.entered.append(self._entered)
        return self._entered

    def __exit__(self, exc_type, exc_value, traceback):
        if get_variable_scope() is not self._entered:
            raise RuntimeError("Improper nesting of variable_scope.")
        _scopes.stack.exit()
        _scopes.entered.pop()


def _as_dims(shape):
    """A shape argument as a list of ints (-1: unknown), or None."""
    if shape is None:
        return None
    if not isinstance(shape, Iterable):
        shape = [shape]
    return [-1 if d is None else int(d) for d in shape]


def _fully_defined(dims):
    return dims is not None and all(d >= 0 for d in dims)


def _partitioner_spec(partitioner, dims, dtype):
    """The server spec of a partitioner argument (see module partitioners)."""
    if not callable(partitioner):
        raise ValueError("Partitioner must be callable, but received: %s" %
                         partitioner)
    if isinstance(partitioner, partitioners.Partitioner):
        return partitioner._spec
    if not _fully_defined(dims):
        # Not called, as in TensorFlow: the server rejects the shape with
        # TensorFlow's text before it looks at the (empty) list.
        return _varscope.PartitionerSpec.explicit([])
    slicing = partitioner(shape=TensorShape(dims), dtype=dtype)
    if not isinstance(slicing, Sequence):
        raise ValueError("Partitioner must return a sequence, but saw: %s" %
                         slicing)
    return _varscope.PartitionerSpec.explicit([int(p) for p in slicing])


def _call_initializer(initializer, name, dims, dtype):
    """The value of a user's initializer callable for a new variable, as
    TensorFlow calls it: initializer(shape, dtype=[, partition_info=None])."""
    kwargs = {"dtype": dtype}
    try:
        if "partition_info" in inspect.signature(initializer).parameters:
            kwargs["partition_info"] = None
    except (TypeError, ValueError):  # No signature to inspect.
        pass
    value = dtypes.to_numpy(initializer(list(dims), **kwargs), dtype)
    if value.shape != tuple(dims):
        raise ValueError(
            "The initializer of variable %s returned a value of shape %s, "
            "not the variable's shape %s." %
            (name, TensorShape(value.shape), TensorShape(dims)))
    return value


def _initializer_spec(initializer, name, dims, dtype, explicit_dtype,
                      partitioned, may_create):
    """The server spec of an initializer argument (or None), and the dims
    and dtype of the variable, which a constant initializer decides when
    the variable is not partitioned (as in TensorFlow)."""
    if isinstance(initializer, type):
        initializer = initializer()
    if initializer is None:
        return None, dims, dtype
    if isinstance(initializer, initializers.Initializer):
        return initializer._spec(dims, dtype), dims, dtype
    if callable(initializer):
        if not may_create or not _fully_defined(dims):
            return None, dims, dtype
        value = _call_initializer(initializer, name, dims, dtype)
    elif not partitioned:
        if dims is not None:
            raise ValueError(
                "If initializer is a constant, do not specify shape.")
        if explicit_dtype is None:
            dtype = dtypes.infer_dtype(initializer)
        value = dtypes.to_numpy(initializer, dtype)
        dims = list(value.shape)
    else:
        value = dtypes.to_numpy(initializer, dtype)
        if _fully_defined(dims) and value.shape != tuple(dims):
            raise ValueError(
                "The initial value of partitioned variable %s has shape %s, "
                "not the variable's shape %s." %
                (name, TensorShape(value.shape), TensorShape(dims)))
    return initializers.constant_spec(value), dims, dtype


def get_variable(name, shape=None, dtype=None, initializer=None,
                 regularizer=None, trainable=None, collections=None,
                 caching_device=None, partitioner=None, validate_shape=True,
                 use_resource=None, custom_getter=None, constraint=None,
                 synchronization=None, aggregation=None):
    """Gets or creates the variable `name` in the current scope, as
    tf.compat.v1.get_variable.

    The full name is `scope/name`. The scope's reuse decides: False creates
    (ValueError if it exists), True returns an existing variable (ValueError
    if missing, naming variables of that name in other scopes), AUTO_REUSE
    gets or creates. An existing variable's shape must be compatible (None or
    -1 dims, or shape=None, match anything) and its dtype equal; its
    initializer and trainable are then ignored. Creation is atomic across
    processes: of racing callers exactly one sees `created`.

    Args (TensorFlow's, in its order):
      name: the name in the scope.
      shape: list of dims (None or -1 unknown), or None.
      dtype: a DType, numpy dtype or name; None: the scope's (float32 at
        the root), or a constant initializer's.
      initializer: an Initializer (or its class), a callable
        `init(shape, dtype=...)` run in Python on creation, or a constant
        (numpy array, list, scalar; then shape must be None and is the
        value's); None: the scope's, else glorot_uniform for floating dtypes
        and zeros otherwise.
      trainable: None means True.
      partitioner: a partitioner (see partitioners) or any callable
        `(shape=, dtype=) -> list`; None: the scope's. Makes a
        PartitionedVariable.
      constraint: a varscope.keras.constraints constraint (stored with a new
        variable, applied by the server after every optimizer step) or a
        callable value -> value (applied by this process after its
        apply_gradients); None: the scope's.
      regularizer, custom_getter: not supported (NotImplementedError unless
        None).
      collections, caching_device, validate_shape, use_resource,
      synchronization, aggregation: accepted, without effect.

    Returns:
      A Variable, or a PartitionedVariable.

    Raises:
      ValueError (and the matching errors.OpError subclass, e.g.
      errors.AlreadyExistsError) with the server's TensorFlow texts for
      reuse, shape, dtype, partitioning and initializer errors; other
      errors.OpError subclasses for other failures (e.g. UnavailableError).
    """
    _reject_unsupported(regularizer=regularizer, custom_getter=custom_getter)
    scope = get_variable_scope()
    if constraint is None:
        constraint = scope.constraint
    if constraint is not None and not (
            callable(constraint) or
            isinstance(constraint, constraints.Constraint)):
        raise ValueError("The `constraint` argument must be a callable.")
    if dtype is not None:
        dtype = dtypes.as_dtype(dtype)
        if initializer is not None and not callable(initializer):
            init_dtype = dtypes.infer_dtype(initializer)
            if init_dtype != dtype:
                raise ValueError(
                    "Initializer type '%s' and explicit dtype '%s' don't "
                    "match." % (init_dtype, dtype))
    explicit_dtype = dtype
    if initializer is None:
        initializer = scope.initializer
    if partitioner is None:
        partitioner = scope.partitioner
    if dtype is None:
        dtype = scope.dtype
    dims = _as_dims(shape)

    # TensorFlow ignores the partitioner of a scalar given as a sequence.
    is_scalar = isinstance(shape, Sequence) and not shape
    partitioner_spec = None
    if partitioner is not None and not is_scalar:
        partitioner_spec = _partitioner_spec(partitioner, dims, dtype)

    initializer_spec, dims, dtype = _initializer_spec(
        initializer, name, dims, dtype, explicit_dtype,
        partitioned=partitioner_spec is not None,
        may_create=scope.reuse is not True)
    variable = variables.wrap(_varscope.get_variable(
        default_client()._connection(), scope._impl, name, shape=dims,
        dtype=dtype.as_datatype_enum, initializer=initializer_spec,
        trainable=trainable, partitioner=partitioner_spec,
        constraint=(constraint._spec() if isinstance(
            constraint, constraints.Constraint) else None)))
    if constraint is not None and not isinstance(constraint,
                                                 constraints.Constraint):
        variables.set_client_constraint(variable, constraint)
    _remember(variable)
    return variable


def variable_store():
    """The variables this process got with get_variable from the default
    client's server, by full name (a partitioned variable's parts by part
    name), as TensorFlow's variable store of a graph holds them:
    init_from_checkpoint maps scopes over it."""
    return graph_state("variables")


def _remember(variable):
    store = variable_store()
    if isinstance(variable, variables.PartitionedVariable):
        for part in variable:
            store[part._shared_name] = part
    else:
        store[variable._shared_name] = variable
