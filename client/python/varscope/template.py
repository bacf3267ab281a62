"""make_template: a function whose first call creates its variables and
later calls reuse them, as tf.compat.v1.make_template."""

from __future__ import annotations

import functools
from typing import Any
from typing import Callable

from varscope import ops
from varscope import variable_scope as vs_lib


def make_template(name_: str, func_: Callable, create_scope_now_: bool = False,
                  unique_name_: str | None = None,
                  custom_getter_: Callable | None = None,
                  **kwargs: Any) -> "Template":
    """Wraps `func_` (with `kwargs` bound) so that its variables, made with
    get_variable, are shared by every call: the first call runs it in a new
    variable scope named `name_` made unique (`name_`, `name__1`, ...; or
    exactly `unique_name_`), later calls re-enter that scope with
    reuse=True. With `create_scope_now_` the scope is chosen now rather than
    at the first call. `custom_getter_` is the scope's custom getter.

    A later call that creates a trainable variable (e.g. with Variable)
    raises ValueError, as in TensorFlow. Raises ValueError if name_ is None.
    """
    if kwargs:
        func_ = functools.partial(func_, **kwargs)
    return Template(name_, func_, create_scope_now=create_scope_now_,
                    unique_name=unique_name_, custom_getter=custom_getter_)


class Template:
    """A function sharing its variables across calls (see make_template)."""

    def __init__(self, name: str, func: Callable,
                 create_scope_now: bool = False,
                 unique_name: str | None = None,
                 custom_getter: Callable | None = None) -> None:
        if name is None:
            raise ValueError("name cannot be None.")
        self._name = name
        self._func = func
        self._unique_name = unique_name
        self._custom_getter = custom_getter
        self._variable_scope = None
        if create_scope_now:
            # Only the variable scope: TensorFlow opens no name scope here.
            with vs_lib.variable_scope(
                    unique_name, default_name=name,
                    custom_getter=custom_getter,
                    auxiliary_name_scope=False) as scope:
                self._variable_scope = scope
        self._variables_created = False

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self._variables_created:
            with vs_lib.variable_scope(self._variable_scope, reuse=True):
                created_before = len(ops.created_trainable())
                result = self._func(*args, **kwargs)
                created = ops.created_trainable()[created_before:]
            if created:
                raise ValueError(
                    "Trainable variable created when calling a template "
                    "after the first time, perhaps you used tf.Variable when "
                    "you meant tf.get_variable: %s" % (created,))
            return result
        if self._variable_scope is not None:
            scope = vs_lib.variable_scope(self._variable_scope)
        else:
            scope = vs_lib.variable_scope(self._unique_name, self._name,
                                          custom_getter=self._custom_getter)
        with scope as entered:
            self._variable_scope = entered
            result = self._func(*args, **kwargs)
        self._variables_created = True
        return result

    @property
    def name(self) -> str:
        return self._name

    @property
    def func(self) -> Callable:
        return self._func

    @property
    def variable_scope(self) -> vs_lib.VariableScope | None:
        return self._variable_scope

    @property
    def variable_scope_name(self) -> str | None:
        """The scope's name with a trailing "/", so it matches only names
        in the scope."""
        if self._variable_scope is None:
            return None
        name = self._variable_scope.name
        return name if name.endswith("/") else name + "/"

    def _collection(self, key: str) -> list:
        if not self._variables_created:
            return []
        return ops.get_collection(key, self.variable_scope_name)

    @property
    def trainable_variables(self) -> list:
        return self._collection(ops.GraphKeys.TRAINABLE_VARIABLES)

    @property
    def global_variables(self) -> list:
        return self._collection(ops.GraphKeys.GLOBAL_VARIABLES)

    @property
    def local_variables(self) -> list:
        return self._collection(ops.GraphKeys.LOCAL_VARIABLES)
