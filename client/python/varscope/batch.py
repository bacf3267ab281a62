"""Batched reads and updates: many variables in one round trip.

    with vs.batch_update() as batch:        # applied atomically on exit
        batch.assign(w, new_w)
        batch.assign_add(b, db)
        batch.scatter_add(emb, vs.IndexedSlices(rows, ids))
    values = vs.batch_read([w, b, emb])     # {"w": ..., "b": ..., ...}

A batch applies all of its updates or none (an error leaves every variable
as it was), in one store write, and a batch_read sees all of a concurrent
batch or none of it. Updates of one batch apply in order: a later update of
a variable sees the earlier ones.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from varscope import client
from varscope import dtypes
from varscope.variables import PartitionedVariable
from varscope.variables import apply_updates


class BatchUpdate:
    """Updates collected by its methods and applied by apply(), or on leaving
    a `with` block without an exception. Not thread-safe."""

    def __init__(self, return_values=False):
        self._return_values = return_values
        self._pairs = []

    def assign(self, variable, value, expected_version=None):
        """Sets `variable` to `value`. With `expected_version` the whole
        batch fails with AbortedError unless the variable is at it."""
        return self._add(variable._specs("assign", value,
                                         expected_version=expected_version))

    def assign_add(self, variable, delta, expected_version=None):
        """Adds `delta` element-wise; as assign."""
        return self._add(variable._specs("assign_add", delta,
                                         expected_version=expected_version))

    def assign_sub(self, variable, delta, expected_version=None):
        """Subtracts `delta` element-wise; as assign."""
        delta = -dtypes.to_numpy(delta, variable.dtype)
        return self._add(variable._specs("assign_add", delta,
                                         expected_version=expected_version))

    def scatter_add(self, variable, sparse_delta):
        """Adds IndexedSlices rows (duplicate indices summed)."""
        return self._add(variable._sparse_specs("scatter_add", sparse_delta))

    def scatter_sub(self, variable, sparse_delta):
        """Subtracts IndexedSlices rows."""
        return self._add(variable._sparse_specs("scatter_add", sparse_delta,
                                                negate=True))

    def scatter_update(self, variable, sparse_delta):
        """Replaces the rows IndexedSlices name (the last duplicate wins)."""
        return self._add(variable._sparse_specs("scatter_update",
                                                sparse_delta))

    def apply(self):
        """Applies the updates collected so far as one atomic batch and
        starts a new one. Returns, if made with return_values=True, each
        updated variable's value after the batch (numpy, one per update and
        part), else None."""
        pairs, self._pairs = self._pairs, []
        return apply_updates(pairs, self._return_values)

    def __len__(self):
        return len(self._pairs)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc_value, traceback):
        if exc_type is None:
            self.apply()
        return False

    def _add(self, pairs):
        self._pairs.extend(pairs)
        return self


def batch_update(return_values: bool = False) -> BatchUpdate:
    """A new BatchUpdate (see the module doc)."""
    return BatchUpdate(return_values)


def batch_read(variables: Iterable | None = None,
               scope: str | None = None) -> dict[str, np.ndarray]:
    """The values of `variables` (Variables, PartitionedVariables or full
    names), or of every variable under `scope`, as of one moment.

    Returns a dict from full name (no ":0") to numpy array; a partitioned
    variable is one entry holding its whole value. Raises NotFoundError for a
    missing variable.
    """
    if (variables is None) == (scope is None):
        raise ValueError("Pass either variables or scope")
    connection = client.default_client()._connection()
    if scope is not None:
        entries = connection.batch_read([], scope)
        return {name: value for name, value, _ in entries}
    names, wholes = [], []
    for variable in variables:
        if isinstance(variable, str):
            names.append(variable)
            continue
        connection = variable._handle().client
        if isinstance(variable, PartitionedVariable):
            wholes.append(variable)
            names.extend(part._shared_name for part in variable)
        else:
            names.append(variable._shared_name)
    client._check_process()
    values = {name: value
              for name, value, _ in connection.batch_read(names, "")}
    for whole in wholes:
        axis, _ = whole._axis()
        values[whole.name] = np.concatenate(
            [values.pop(part._shared_name) for part in whole], axis=axis)
    return values
