"""TensorFlow's variable_scope, get_variable_scope, get_variable and
get_local_variable.

Scope names, reuse inheritance and default_name uniquifying are those of the
C++ client's ScopeStack (one per thread, as TensorFlow's scope stack is per
thread and graph): reuse=True is sticky in child scopes, reuse=False/None
inherits, AUTO_REUSE under True stays AUTO_REUSE, a re-entered captured scope
keeps its own reuse, default_name gives name, name_1, name_2... Entering a
variable scope also opens a name scope (see ops.name_scope), as in
TensorFlow: `variable_scope("a")` twice opens the name scopes `a/` and
`a_1/`; auxiliary_name_scope=False opens none.

get_variable takes the scope's defaults (initializer, regularizer,
partitioner, dtype, custom getter) and calls the custom getter, if any, with
the true getter: getters of nested scopes compose, each receiving the outer
scope's getter (wrapping the true one) as its `getter`. The true getter sends
the full name, the reuse mode, shape, dtype, initializer, partitioner and
collections to the server, which creates or returns the variable atomically
and raises TensorFlow's errors with TensorFlow's texts.

The first time a process gets a variable other than with reuse=True (as the
creation in its TensorFlow graph would be), it records it: its name counts
as used by the process, a regularizer's loss joins REGULARIZATION_LOSSES,
and the collections the process keeps get it. Variables in LOCAL_VARIABLES
(get_local_variable) live in this process only, with the same reuse rules
and texts.

Arguments without meaning here are accepted and ignored where TensorFlow's
semantics allow it (values, caching_device, use_resource, validate_shape,
synchronization, aggregation). constraint= takes Keras' built-in
constraints (applied by the server, see varscope.constraints) or any
callable (applied by the client after apply_gradients).
"""

from __future__ import annotations

from collections.abc import Iterable
from collections.abc import Sequence
import enum
import functools
import inspect
import sys
import threading
from typing import Any
from typing import Callable

from varscope import _varscope
from varscope import dtypes
from varscope import errors
from varscope import initializers
from varscope import ops
from varscope import partitioners
from varscope import regularizers
from varscope import variables
from varscope.client import default_client
from varscope.tensor_shape import TensorShape
from varscope.tensor_shape import dimension_value


class _ReuseMode(enum.Enum):
    """TensorFlow's reuse mode besides True and False."""
    AUTO_REUSE = 1


AUTO_REUSE = _ReuseMode.AUTO_REUSE

_REUSE_TO_CPP = {True: _varscope.Reuse.TRUE,
                 AUTO_REUSE: _varscope.Reuse.AUTO_REUSE}
_REUSE_FROM_CPP = {_varscope.Reuse.FALSE: False, _varscope.Reuse.TRUE: True,
                   _varscope.Reuse.AUTO_REUSE: AUTO_REUSE}


class VariableScope:
    """A variable scope, as TensorFlow's VariableScope.

    `name` and `reuse` (False, True or AUTO_REUSE) decide the full names and
    the mode of get_variable calls in the scope; `initializer`, `regularizer`,
    `dtype`, `partitioner` and `custom_getter` are their defaults;
    `original_name_scope` is the name scope opened when it was first
    entered. Obtained from variable_scope() or get_variable_scope(), and
    re-entered by passing it to variable_scope().
    """

    def __init__(self, impl: Any, initializer: Any = None,
                 partitioner: Any = None, regularizer: Any = None,
                 custom_getter: Callable | None = None,
                 name_scope: str = "", constraint: Any = None) -> None:
        self._impl = impl
        self._initializer = initializer
        self._partitioner = partitioner
        self._regularizer = regularizer
        self._custom_getter = custom_getter
        self._name_scope = name_scope
        self._constraint = constraint

    @property
    def name(self) -> str:
        return self._impl.name

    @property
    def original_name_scope(self) -> str:
        return self._name_scope

    @property
    def reuse(self) -> Any:
        return _REUSE_FROM_CPP[self._impl.reuse]

    @property
    def initializer(self) -> Any:
        return self._initializer

    @property
    def dtype(self) -> dtypes.DType:
        return dtypes.as_dtype(self._impl.dtype)

    @property
    def partitioner(self) -> Any:
        return self._partitioner

    @property
    def regularizer(self) -> Any:
        return self._regularizer

    @property
    def custom_getter(self) -> Callable | None:
        return self._custom_getter

    @property
    def constraint(self) -> Any:
        return self._constraint

    def reuse_variables(self) -> None:
        """Makes this scope reuse from now on (cannot be undone)."""
        self._impl.reuse_variables()

    def set_initializer(self, initializer: Any) -> None:
        self._initializer = initializer

    def set_dtype(self, dtype: Any) -> None:
        self._impl.dtype = dtypes.as_dtype(dtype).as_datatype_enum

    def set_partitioner(self, partitioner: Any) -> None:
        self._partitioner = partitioner

    def set_regularizer(self, regularizer: Any) -> None:
        self._regularizer = regularizer

    def set_custom_getter(self, custom_getter: Callable | None) -> None:
        self._custom_getter = custom_getter

    def set_constraint(self, constraint: Any) -> None:
        self._constraint = constraint

    def get_collection(self, name: Any) -> list:
        """The collection's items under this scope (ops.get_collection with
        scope "name/")."""
        return ops.get_collection(name, self.name + "/" if self.name else "")

    def global_variables(self) -> list:
        return self.get_collection(ops.GraphKeys.GLOBAL_VARIABLES)

    def trainable_variables(self) -> list:
        return self.get_collection(ops.GraphKeys.TRAINABLE_VARIABLES)

    def local_variables(self) -> list:
        return self.get_collection(ops.GraphKeys.LOCAL_VARIABLES)

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


def get_variable_scope() -> VariableScope:
    """The current thread's innermost scope (the root if none is entered)."""
    return _scopes.entered[-1]


def _compose_getters(custom_getter: Callable,
                     outer: Callable | None) -> Callable:
    """A scope's custom getter over its enclosing scope's, as TensorFlow
    composes them: `custom_getter` receives, as its getter, `outer` bound to
    the getter the composition is called with."""
    if outer is None:
        return custom_getter

    def composed(getter, *args, **kwargs):
        return custom_getter(functools.partial(outer, getter), *args,
                             **kwargs)

    return composed


class variable_scope:  # pylint: disable=invalid-name
    """A context manager entering a variable scope (and a name scope), as
    TensorFlow's.

    Args (TensorFlow's, in its order):
      name_or_scope: a name (appended to the current scope's), a
        VariableScope to re-enter (its name as is), or None to use
        `default_name`.
      default_name: when name_or_scope is None, the name to uniquify
        (name, name_1, ...).
      initializer, regularizer, partitioner, dtype, constraint: defaults for
        get_variable in the scope; None inherits them from the parent (or
        re-entered) scope.
      custom_getter: a getter for get_variable in the scope, composed over
        the parent's (or re-entered scope's) getter.
      reuse: True, AUTO_REUSE, or False/None to inherit.
      auxiliary_name_scope: False opens no name scope (for re-entering a
        scope with its original name scope).
      values, caching_device, use_resource: accepted, without effect.

    Raises TypeError, ValueError and RuntimeError with TensorFlow's texts for
    a missing name, a bad reuse, reuse without a name, a bad name scope, and
    exits out of order.
    """

    def __init__(self, name_or_scope: str | VariableScope | None,
                 default_name: str | None = None, values: Any = None,
                 initializer: Any = None, regularizer: Any = None,
                 caching_device: Any = None, partitioner: Any = None,
                 custom_getter: Callable | None = None, reuse: Any = None,
                 dtype: Any = None, use_resource: Any = None,
                 constraint: Any = None,
                 auxiliary_name_scope: bool = True) -> None:
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
        self._name_or_scope = name_or_scope
        self._default_name = default_name
        self._initializer = initializer
        self._regularizer = regularizer
        self._partitioner = partitioner
        self._custom_getter = custom_getter
        self._constraint = constraint
        self._reuse = reuse
        self._dtype = None if dtype is None else dtypes.as_dtype(dtype)
        self._auxiliary_name_scope = auxiliary_name_scope
        self._entered = None
        self._name_scope = None

    def _open_name_scope(self) -> ops.name_scope | None:
        """The name scope TensorFlow opens with this variable scope (None
        for the root scope), not yet entered."""
        if not self._auxiliary_name_scope:
            current = ops.get_name_scope()
            return ops.name_scope(current + "/" if current else "")
        if self._name_or_scope is None:
            return ops.name_scope(self._default_name)
        if isinstance(self._name_or_scope, VariableScope):
            # TensorFlow opens a new name scope named after the last part.
            last = self._name_or_scope.name.split("/")[-1]
            return ops.name_scope(last) if last else None
        return ops.name_scope(self._name_or_scope) if self._name_or_scope \
            else None

    def __enter__(self) -> VariableScope:
        if not isinstance(self._name_or_scope, (str, VariableScope,
                                                type(None))):
            raise TypeError("VariableScope: name_or_scope must be a string or "
                            "VariableScope.")
        name_scope = self._open_name_scope()
        opened = name_scope.__enter__() if name_scope is not None else None
        try:
            self._entered = self._enter_variable_scope(opened)
        except BaseException:
            if name_scope is not None:
                name_scope.__exit__(*sys.exc_info())
            raise
        self._name_scope = name_scope
        _scopes.entered.append(self._entered)
        return self._entered

    def _enter_variable_scope(self, opened: str | None) -> VariableScope:
        """Enters the C++ scope; the Python scope object of the new frame
        with its defaults (`opened`: the name scope entered, if any)."""
        kwargs = {"reuse": _REUSE_TO_CPP.get(self._reuse)}
        if self._dtype is not None:
            kwargs["dtype"] = self._dtype.as_datatype_enum
        if isinstance(self._name_or_scope, VariableScope):
            base = self._name_or_scope
            kwargs["scope"] = base._impl
            name_scope = base.original_name_scope
        else:
            base = get_variable_scope()
            if self._name_or_scope is None:
                kwargs["default_name"] = self._default_name
            else:
                kwargs["name"] = self._name_or_scope
            name_scope = self._name_or_scope if opened is None else opened
        impl = _scopes.stack.enter(**kwargs)

        def pick(given, inherited):
            return inherited if given is None else given

        return VariableScope(
            impl,
            initializer=pick(self._initializer, base.initializer),
            partitioner=pick(self._partitioner, base.partitioner),
            regularizer=pick(self._regularizer, base.regularizer),
            custom_getter=(base.custom_getter if self._custom_getter is None
                           else _compose_getters(self._custom_getter,
                                                 base.custom_getter)),
            name_scope=name_scope,
            constraint=pick(self._constraint, base.constraint))

    def __exit__(self, exc_type, exc_value, traceback) -> None:
        if get_variable_scope() is not self._entered:
            raise RuntimeError("Improper nesting of variable_scope.")
        _scopes.stack.exit()
        _scopes.entered.pop()
        if self._name_scope is not None:
            self._name_scope.__exit__(exc_type, exc_value, traceback)


def _as_dims(shape):
    """A shape argument as a list of ints (-1: unknown), or None. TypeError
    for a dimension that is not an integer (see dimension_value)."""
    if shape is None:
        return None
    if not isinstance(shape, Iterable):
        shape = [shape]
    return [-1 if d is None else d for d in map(dimension_value, shape)]


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


def _initializer_spec(initializer, name, dims, dtype, partitioned,
                      may_create):
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
        # The value's own dtype, as TensorFlow's (get_variable checked an
        # explicit dtype against it).
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


def _accepts_constraint(custom_getter: Callable) -> bool:
    """Whether TensorFlow passes `constraint` to a custom getter: it names
    the parameter or takes **kwargs."""
    try:
        parameters = inspect.signature(custom_getter).parameters.values()
    except (TypeError, ValueError):  # No signature to inspect.
        return False
    return any(p.name == "constraint" or p.kind == p.VAR_KEYWORD
               for p in parameters)


def get_variable(name: str, shape: Any = None, dtype: Any = None,
                 initializer: Any = None, regularizer: Any = None,
                 trainable: bool | None = None, collections: Any = None,
                 caching_device: Any = None, partitioner: Any = None,
                 validate_shape: bool = True, use_resource: Any = None,
                 custom_getter: Callable | None = None,
                 constraint: Any = None, synchronization: Any = None,
                 aggregation: Any = None) -> Any:
    """Gets or creates the variable `name` in the current scope, as
    tf.compat.v1.get_variable.

    The full name is `scope/name`. The scope's reuse decides: False creates
    (ValueError if it exists), True returns an existing variable (ValueError
    if missing, naming variables of that name in other scopes), AUTO_REUSE
    gets or creates. An existing variable's shape must be compatible (None or
    -1 dims, or shape=None, match anything) and its dtype equal; its
    initializer, trainable and collections are then ignored. Creation is
    atomic across processes: of racing callers exactly one sees `created`.

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
      regularizer: a callable taking the variable's value (numpy) and
        returning its loss, or None (e.g. l2_regularizer(0.01)); None: the
        scope's. Its loss joins REGULARIZATION_LOSSES when this process
        first gets the variable (see losses.get_regularization_loss).
      trainable: None means True (TRAINABLE_VARIABLES).
      collections: the collections a new variable joins (default
        [GLOBAL_VARIABLES]), stored with it on the server; with
        LOCAL_VARIABLES among them, the variable is local to this process.
      partitioner: a partitioner (see partitioners) or any callable
        `(shape=, dtype=) -> list`; None: the scope's. Makes a
        PartitionedVariable.
      custom_getter: a callable `getter_fn(getter, name, *args, **kwargs)`
        called instead of the true getter, with it; None: the scope's
        (composed getters of nested scopes). Its result is returned.
      constraint: a varscope.keras.constraints constraint (stored with a new
        variable, applied by the server after every optimizer step) or a
        callable value -> value (applied by this process after its
        apply_gradients); None: the scope's.
      caching_device, validate_shape, use_resource, synchronization,
      aggregation: accepted, without effect.

    Returns:
      A Variable, or a PartitionedVariable (or what the custom getter
      returns).

    Raises:
      ValueError (and the matching errors.OpError subclass, e.g.
      errors.AlreadyExistsError) with the server's TensorFlow texts for
      reuse, shape, dtype, partitioning and initializer errors; other
      errors.OpError subclasses for other failures (e.g. UnavailableError).
    """
    scope = get_variable_scope()
    if constraint is None:
        constraint = scope.constraint
    if dtype is not None:
        dtype = dtypes.as_dtype(dtype)
        if initializer is not None and not callable(initializer):
            init_dtype = dtypes.infer_dtype(initializer)
            if init_dtype != dtype:
                raise ValueError(
                    "Initializer type '%s' and explicit dtype '%s' don't "
                    "match." % (init_dtype, dtype))
    if custom_getter is None:
        custom_getter = scope.custom_getter
    if custom_getter is not None and not callable(custom_getter):
        raise ValueError("Passed a custom_getter which is not callable: %s" %
                         custom_getter)
    arguments = {
        "name": scope.name + "/" + name if scope.name else name,
        "shape": shape,
        "dtype": scope.dtype if dtype is None else dtype,
        "initializer": (scope.initializer if initializer is None else
                        initializer),
        "regularizer": (scope.regularizer if regularizer is None else
                        regularizer),
        "reuse": scope.reuse,
        "trainable": True if trainable is None else trainable,
        "collections": collections,
        "caching_device": caching_device,
        "partitioner": (scope.partitioner if partitioner is None else
                        partitioner),
        "validate_shape": validate_shape,
        "use_resource": use_resource,
        "synchronization": synchronization,
        "aggregation": aggregation,
    }
    # Variable names depend on the variable scope only.
    with ops.name_scope(None):
        if custom_getter is None:
            return _true_getter(constraint=constraint, **arguments)
        if _accepts_constraint(custom_getter):
            arguments["constraint"] = constraint
        return custom_getter(getter=_true_getter, **arguments)


def get_local_variable(name: str, shape: Any = None, dtype: Any = None,
                       initializer: Any = None, regularizer: Any = None,
                       trainable: bool = False, collections: Any = None,
                       caching_device: Any = None, partitioner: Any = None,
                       validate_shape: bool = True, use_resource: Any = None,
                       custom_getter: Callable | None = None,
                       constraint: Any = None, synchronization: Any = None,
                       aggregation: Any = None) -> Any:
    """get_variable in LOCAL_VARIABLES (added to `collections`), never
    trainable, as tf.compat.v1.get_local_variable: the variable lives in
    this process only (never on the server), under the scope's reuse rules.
    Partitioned local variables are not supported (NotImplementedError)."""
    del trainable  # Always False, as in TensorFlow.
    return get_variable(
        name, shape=shape, dtype=dtype, initializer=initializer,
        regularizer=regularizer, trainable=False,
        collections=list(collections or []) +
        [ops.GraphKeys.LOCAL_VARIABLES],
        caching_device=caching_device, partitioner=partitioner,
        validate_shape=validate_shape, use_resource=use_resource,
        custom_getter=custom_getter, constraint=constraint,
        synchronization=synchronization, aggregation=aggregation)


def _true_getter(name: str, shape: Any = None, dtype: Any = dtypes.float32,
                 initializer: Any = None, regularizer: Any = None,
                 reuse: Any = None, trainable: bool | None = None,
                 collections: Any = None, caching_device: Any = None,
                 partitioner: Any = None, validate_shape: bool = True,
                 use_resource: Any = None, constraint: Any = None,
                 synchronization: Any = None, aggregation: Any = None) -> Any:
    """get_variable for a full name, after the scope's defaults and custom
    getters (TensorFlow's parameters, in its order)."""
    variables.check_constraint(constraint)
    dtype = dtypes.as_dtype(dtype)
    trainable = True if trainable is None else bool(trainable)
    collections = variables.variable_collections(collections, trainable)
    local = variables.is_local(collections)
    if local:
        variable = _local_store.get(name, shape, dtype, initializer, reuse,
                                    trainable, partitioner)
    else:
        variable = _server_variable(name, shape, dtype, initializer, reuse,
                                    trainable, partitioner, collections,
                                    constraint)
        _remember(variable)
    variables.keep_constraint(variable, constraint, local)
    if reuse is not True:
        _record(name, variable, regularizer, collections, trainable)
    return variable


def _server_variable(name, shape, dtype, initializer, reuse, trainable,
                     partitioner, collections, constraint):
    """The server's variable `name` (see get_variable)."""
    dims = _as_dims(shape)
    # TensorFlow ignores the partitioner of a scalar given as a sequence.
    is_scalar = isinstance(shape, Sequence) and not shape
    partitioner_spec = None
    if partitioner is not None and not is_scalar:
        partitioner_spec = _partitioner_spec(partitioner, dims, dtype)
    initializer_spec, dims, dtype = _initializer_spec(
        initializer, name, dims, dtype,
        partitioned=partitioner_spec is not None,
        may_create=reuse is not True)
    return variables.wrap(_varscope.get_variable(
        default_client()._connection(),
        variables.root_scope(_REUSE_TO_CPP.get(reuse, _varscope.Reuse.FALSE)),
        name, shape=dims, dtype=dtype.as_datatype_enum,
        initializer=initializer_spec, trainable=trainable,
        partitioner=partitioner_spec,
        constraint=variables.server_constraint(constraint, local=False),
        collections=[key for key in collections if ops.is_server_key(key)]))


# The server variables this process got with get_variable, by full name (a
# partitioned variable's parts by part name), as TensorFlow's variable store
# of a graph holds them: init_from_checkpoint maps scopes over it.
_store: dict[str, variables.Variable] = {}


def variable_store() -> dict[str, variables.Variable]:
    """This process's server variables from get_variable (see _store)."""
    return _store


def _remember(variable: Any) -> None:
    if isinstance(variable, variables.PartitionedVariable):
        for part in variable:
            _store[part._shared_name] = part
    else:
        _store[variable._shared_name] = variable


def _default_initializer(dtype: dtypes.DType) -> initializers.Initializer:
    """TensorFlow's: glorot_uniform for floating dtypes, else zeros."""
    if dtype.is_floating:
        return initializers.glorot_uniform_initializer()
    return initializers.zeros_initializer()


class _LocalStore:
    """This process's local variables by full name, with get_variable's
    reuse rules and the server's texts. Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._impls: dict[str, variables.LocalImpl] = {}

    def clear(self) -> None:
        with self._lock:
            self._impls.clear()

    def get(self, name, shape, dtype, initializer, reuse, trainable,
            partitioner) -> variables.Variable:
        """The local variable `name`, created unless reuse is True; raises
        as the server's get_variable does."""
        if partitioner is not None and not (isinstance(shape, Sequence) and
                                            not shape):
            raise NotImplementedError(
                "Varscope does not support partitioned local variables (%s)."
                % name)
        dims = _as_dims(shape)
        with self._lock:
            found = self._impls.get(name)
        if found is None:
            if reuse is True:
                raise errors.NotFoundError(
                    None, None, "Variable %s does not exist, or was not "
                    "created with tf.get_variable(). Did you mean to set "
                    "reuse=tf.AUTO_REUSE in VarScope?" % name)
            # Outside the lock: the initializer may be user code.
            new = self._new(name, dims, dtype, initializer, trainable)
            with self._lock:
                found = self._impls.setdefault(name, new)
            if found is new:
                return variables.Variable._from_impl(new)
        if reuse is not AUTO_REUSE and reuse is not True:
            raise errors.AlreadyExistsError(
                None, None, "Variable %s already exists, disallowed. Did you "
                "mean to set reuse=True or reuse=tf.AUTO_REUSE in VarScope?"
                % name)
        found_shape = TensorShape(found.shape)
        if dims is not None and not TensorShape(dims).is_compatible_with(
                found_shape):
            raise errors.InvalidArgumentError(
                None, None, "Trying to share variable %s, but specified shape "
                "%s and found shape %s." % (name, TensorShape(dims),
                                            found_shape))
        if dtype != dtypes.as_dtype(found.dtype):
            raise errors.InvalidArgumentError(
                None, None, "Trying to share variable %s, but specified dtype "
                "%s and found dtype %s." % (name, dtype.name,
                                            dtypes.as_dtype(found.dtype).name))
        return variables.Variable._from_impl(found)

    @staticmethod
    def _new(name, dims, dtype, initializer, trainable):
        spec, dims, dtype = _initializer_spec(
            initializer, name, dims, dtype, partitioned=False,
            may_create=True)
        if not _fully_defined(dims):
            raise errors.InvalidArgumentError(
                None, None, "Shape of a new variable (%s) must be fully "
                "defined, but instead was %s." %
                (name, "<unknown>" if dims is None else TensorShape(dims)))
        if spec is None:
            spec = _default_initializer(dtype)._spec(dims, dtype)
        value = _varscope.initial_value(spec, dtype.as_datatype_enum, dims)
        return variables.LocalImpl(name, value, dtype, trainable)


_local_store = _LocalStore()
# The full names this process got other than with reuse=True (its "graph's"
# variables).
_recorded_lock = threading.Lock()
_recorded: set[str] = set()


def _record(name, variable, regularizer, collections, trainable):
    """Records a variable the first time this process gets it other than
    with reuse=True, as TensorFlow does when it makes the variable in the
    process's graph: per variable (each part of a partitioned one), its name
    counts as used, it joins the collections the process keeps, and the
    regularizer's loss, unless None, joins REGULARIZATION_LOSSES."""
    with _recorded_lock:
        if name in _recorded:
            return
        _recorded.add(name)
    if isinstance(variable, variables.PartitionedVariable):
        singles = list(variable)
    else:
        singles = [variable]
    for single in singles:
        ops.mark_used(single._shared_name)
        variables.join_collections(single, collections)
        ops.note_created(single._shared_name, trainable)
        if regularizer is not None:
            regularizers.add_loss(single, regularizer)


def _reset() -> None:
    _local_store.clear()
    _store.clear()
    with _recorded_lock:
        _recorded.clear()
    if len(_scopes.entered) == 1:  # At the root: fresh counters.
        _scopes.__init__()


ops.on_reset(_reset)
