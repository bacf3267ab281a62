"""What TensorFlow keeps per graph, kept per process: name scopes, unique
op names and collections.

Varscope has no graph; a process plays the part of one worker's graph in
TensorFlow's between-graph replication:

- `name_scope` scopes are per thread and the names they hand out (and the
  names of the variables the process makes) are recorded per process, as a
  graph records its op names: `Variable(name="v")` twice gives `v` and `v_1`.
  Variables made with get_variable are named by their variable scope only.
- Collections are split. Which collections a variable on the server belongs
  to is stored with it, so every worker sees the same `global_variables()`,
  `trainable_variables()` and `get_collection("my_vars")`. The keys in
  PROCESS_KEYS (LOCAL_VARIABLES, LOSSES, REGULARIZATION_LOSSES, UPDATE_OPS,
  SUMMARIES and the other tf.GraphKeys that hold ops or objects), any
  non-string key, and everything `add_to_collection` adds are this process's
  own, as a graph's collections are.

`reset_default_graph()` forgets all of it (not the server's variables).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Hashable
from typing import Any


class GraphKeys:
    """The standard collection names, as tf.compat.v1.GraphKeys."""

    GLOBAL_VARIABLES = "variables"
    LOCAL_VARIABLES = "local_variables"
    METRIC_VARIABLES = "metric_variables"
    MODEL_VARIABLES = "model_variables"
    TRAINABLE_VARIABLES = "trainable_variables"
    SUMMARIES = "summaries"
    QUEUE_RUNNERS = "queue_runners"
    TABLE_INITIALIZERS = "table_initializer"
    ASSET_FILEPATHS = "asset_filepaths"
    MOVING_AVERAGE_VARIABLES = "moving_average_variables"
    REGULARIZATION_LOSSES = "regularization_losses"
    CONCATENATED_VARIABLES = "concatenated_variables"
    SAVERS = "savers"
    WEIGHTS = "weights"
    BIASES = "biases"
    ACTIVATIONS = "activations"
    UPDATE_OPS = "update_ops"
    LOSSES = "losses"
    SAVEABLE_OBJECTS = "saveable_objects"
    RESOURCES = "resources"
    LOCAL_RESOURCES = "local_resources"
    TRAINABLE_RESOURCE_VARIABLES = "trainable_resource_variables"
    INIT_OP = "init_op"
    LOCAL_INIT_OP = "local_init_op"
    READY_OP = "ready_op"
    READY_FOR_LOCAL_INIT_OP = "ready_for_local_init_op"
    SUMMARY_OP = "summary_op"
    GLOBAL_STEP = "global_step"
    EVAL_STEP = "eval_step"
    TRAIN_OP = "train_op"
    COND_CONTEXT = "cond_context"
    WHILE_CONTEXT = "while_context"
    VARIABLES = GLOBAL_VARIABLES  # TensorFlow's deprecated alias


# Collections that never hold server variables: asking the server for them
# would cost a listing of every variable for nothing.
PROCESS_KEYS = frozenset((
    GraphKeys.LOCAL_VARIABLES, GraphKeys.LOSSES,
    GraphKeys.REGULARIZATION_LOSSES, GraphKeys.UPDATE_OPS,
    GraphKeys.SUMMARIES, GraphKeys.QUEUE_RUNNERS,
    GraphKeys.TABLE_INITIALIZERS, GraphKeys.ASSET_FILEPATHS,
    GraphKeys.SAVERS, GraphKeys.ACTIVATIONS, GraphKeys.SAVEABLE_OBJECTS,
    GraphKeys.RESOURCES, GraphKeys.LOCAL_RESOURCES, GraphKeys.INIT_OP,
    GraphKeys.LOCAL_INIT_OP, GraphKeys.READY_OP,
    GraphKeys.READY_FOR_LOCAL_INIT_OP, GraphKeys.SUMMARY_OP,
    GraphKeys.TRAIN_OP, GraphKeys.COND_CONTEXT, GraphKeys.WHILE_CONTEXT))


def is_server_key(key: Hashable) -> bool:
    """Whether variables on the server may be stored in collection `key`."""
    return isinstance(key, str) and key not in PROCESS_KEYS


# TensorFlow's op-name grammar (which is also Varscope's variable-name
# grammar): a scope opened at the root must start as an op name does.
_ROOT_SCOPE = re.compile(r"^[A-Za-z0-9.][A-Za-z0-9_.\-/]*$")
_NESTED_SCOPE = re.compile(r"^[A-Za-z0-9_.\-/]*$")

_lock = threading.Lock()
# Lower-cased names handed out -> how often (TensorFlow compares op names
# case-insensitively).
_names_in_use: dict[str, int] = {}
_collections: dict[Hashable, list] = {}
# Trainable variables this process created, in order (Template's check).
_created_trainable: list[str] = []


class _ThreadNameStack(threading.local):
    def __init__(self) -> None:
        super().__init__()
        self.scope = ""  # the current name scope, without a trailing "/"


_stack = _ThreadNameStack()


def get_name_scope() -> str:
    """The current thread's name scope, e.g. "outer/inner" ("" at the
    root)."""
    return _stack.scope


def unique_name(name: str, mark_as_used: bool = True) -> str:
    """`name` under the current name scope, made unique in this process as
    TensorFlow's Graph.unique_name does: the first `a` is `a`, the next ones
    `a_1`, `a_2`, skipping names already handed out."""
    if _stack.scope:
        name = _stack.scope + "/" + name
    key = name.lower()
    with _lock:
        count = _names_in_use.get(key, 0)
        if mark_as_used:
            _names_in_use[key] = count + 1
        if count == 0:
            return name
        candidate = "%s_%d" % (key, count)
        while candidate in _names_in_use:
            count += 1
            candidate = "%s_%d" % (key, count)
        if mark_as_used:
            _names_in_use[candidate] = 1
    return "%s_%d" % (name, count)


def mark_used(full_name: str) -> None:
    """Records a variable's full name as an op name of this process, as
    TensorFlow does when get_variable makes a variable."""
    with name_scope(None):
        unique_name(full_name)


def _open_scope(name: str | None) -> str:
    """Makes `name` the current name scope as TensorFlow's Graph.name_scope
    does: None or "" is the root, a name ending in "/" re-enters that scope
    as is, any other name opens it under the current scope, made unique.
    Returns the scope with a trailing "/" ("" at the root)."""
    if name:
        grammar = _NESTED_SCOPE if _stack.scope else _ROOT_SCOPE
        if not grammar.match(name):
            raise ValueError("'%s' is not a valid scope name" % name)
    if not name:
        _stack.scope = ""
    elif name.endswith("/"):
        _stack.scope = name[:-1]
    else:
        _stack.scope = unique_name(name)
    return _stack.scope + "/" if _stack.scope else ""


class name_scope:  # pylint: disable=invalid-name
    """A context manager opening a name scope, as tf.compat.v1.name_scope.

    `name` (or, if it is None, `default_name`) is opened under the current
    name scope and made unique in the process (`a`, `a_1`, ...); a name
    ending in "/" re-enters that scope exactly; None with no default_name
    (and no values) goes back to the root. The block gets the scope with a
    trailing "/".

    Name scopes name what `Variable` makes (and regularization losses);
    variables made with get_variable ignore them, as in TensorFlow.
    `values` is accepted and only checked as TensorFlow does.

    Raises ValueError for a name outside TensorFlow's scope-name grammar,
    TypeError for a default_name that is not a string.
    """

    def __init__(self, name: str | None, default_name: str | None = None,
                 values: Any = None) -> None:
        if not (default_name is None or isinstance(default_name, str)):
            raise TypeError(
                "`default_name` type (%s) is not a string type. You likely "
                "meant to pass this into the `values` kwarg." %
                type(default_name))
        self._name = default_name if name is None else name
        self._default_name = default_name
        self._values = values
        self._old: str | None = None

    def __enter__(self) -> str:
        if self._name is None and self._values is not None:
            raise ValueError(
                "At least one of name (%s) and default_name (%s) must be "
                "provided." % (self._name, self._default_name))
        old = _stack.scope
        opened = _open_scope(self._name)
        self._old = old
        return opened

    def __exit__(self, exc_type, exc_value, traceback) -> None:
        _stack.scope = self._old


def add_to_collection(name: Hashable, value: Any) -> None:
    """Appends `value` to this process's collection `name`."""
    with _lock:
        _collections.setdefault(name, []).append(value)


def add_to_collections(names: Any, value: Any) -> None:
    """add_to_collection for each of `names` (one string, or an iterable;
    duplicates count once)."""
    for name in (names,) if isinstance(names, str) else set(names):
        add_to_collection(name, value)


def get_collection_ref(key: Hashable) -> list:
    """This process's list for collection `key` (created if missing), to be
    changed in place. Variables stored on the server are not in it."""
    with _lock:
        return _collections.setdefault(key, [])


def _matching(items: list, scope: str | None) -> list:
    """TensorFlow's scope filter: the items whose `name` the regular
    expression `scope` matches at its start; items without a name are left
    out (all items are kept when scope is None)."""
    if scope is None:
        return items
    pattern = re.compile(scope)
    return [item for item in items
            if isinstance(getattr(item, "name", None), str) and
            pattern.match(item.name)]


def get_collection(key: Hashable, scope: str | None = None) -> list:
    """The collection `key`, as tf.compat.v1.get_collection: the server's
    variables stored in it (every worker's, in name order, parts of a
    partitioned variable one by one) followed by this process's items in
    the order they were added. With `scope`, only the items whose name the
    regular expression matches at its start (so "dense" also matches
    "dense_1/kernel:0"; use "dense/" for the scope alone).

    Listing the server's variables reads the metadata of every variable it
    holds: one call per 1000 variables, per shard.
    """
    items = []
    if is_server_key(key):
        from varscope import variables  # pylint: disable=import-outside-toplevel
        items = variables.server_collection(key)
    with _lock:
        items += _collections.get(key, [])
    return _matching(items, scope)


def global_variables(scope: str | None = None) -> list:
    """get_collection(GLOBAL_VARIABLES, scope): every variable on the server
    that was created in it (the default), slots and the global step
    included."""
    return get_collection(GraphKeys.GLOBAL_VARIABLES, scope)


def trainable_variables(scope: str | None = None) -> list:
    """get_collection(TRAINABLE_VARIABLES, scope)."""
    return get_collection(GraphKeys.TRAINABLE_VARIABLES, scope)


def local_variables(scope: str | None = None) -> list:
    """get_collection(LOCAL_VARIABLES, scope): this process's local
    variables (get_local_variable)."""
    return get_collection(GraphKeys.LOCAL_VARIABLES, scope)


def model_variables(scope: str | None = None) -> list:
    """get_collection(MODEL_VARIABLES, scope)."""
    return get_collection(GraphKeys.MODEL_VARIABLES, scope)


def note_created(name: str, trainable: bool) -> None:
    """Records that this process created variable `name` (see
    created_trainable)."""
    if trainable:
        with _lock:
            _created_trainable.append(name)


def created_trainable() -> list[str]:
    """The names of the trainable variables this process created (by
    Variable, or by get_variable without reuse=True), in order."""
    with _lock:
        return list(_created_trainable)


_reset_hooks: list = []


def on_reset(hook) -> None:
    """Registers `hook()` to run in reset_default_graph (for the modules
    that keep per-process state of their own)."""
    _reset_hooks.append(hook)


def reset_default_graph() -> None:
    """Forgets what this process kept in place of a graph, as
    tf.compat.v1.reset_default_graph: names in use, its collections (the
    server's variables and their collections stay), its local variables and
    which variables it made. Scopes the calling thread is in stay entered;
    called outside any variable scope, it also restarts the thread's
    default_name counting."""
    with _lock:
        _names_in_use.clear()
        _collections.clear()
        _created_trainable.clear()
    for hook in _reset_hooks:
        hook()
