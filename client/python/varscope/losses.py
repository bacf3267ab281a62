"""The regularization losses of tf.compat.v1.losses, evaluated now.

TensorFlow returns tensors to run later; here the losses are computed when
called, from the variables' current values, read in one batch (one moment)
for those on the server.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from varscope import ops
from varscope.batch import batch_read
from varscope.regularizers import RegularizationLoss
from varscope.variables import LocalImpl


def _current_values(variables: list) -> list:
    """The values of Variables: the server's in one batch read, local ones
    read here."""
    on_server = [v for v in variables if not isinstance(v._impl, LocalImpl)]
    read = batch_read(on_server) if on_server else {}
    return [v.read() if isinstance(v._impl, LocalImpl) else
            read[v._shared_name] for v in variables]


def get_regularization_losses(scope: str | None = None) -> list:
    """The items of REGULARIZATION_LOSSES whose name `scope` matches (see
    ops.get_collection), evaluated: a RegularizationLoss gives its
    regularizer's value on the variable's current value (a numpy scalar);
    anything else added to the collection is returned as it is."""
    items = ops.get_collection(ops.GraphKeys.REGULARIZATION_LOSSES, scope)
    losses = [item for item in items if isinstance(item, RegularizationLoss)]
    values = iter(_current_values([loss.variable for loss in losses]))
    return [item.regularizer(next(values))
            if isinstance(item, RegularizationLoss) else item
            for item in items]


def get_regularization_loss(scope: str | None = None,
                            name: str = "total_regularization_loss") -> float:
    """The sum of get_regularization_losses(scope), 0.0 if there are none,
    as a Python float. `name` is accepted for compatibility."""
    del name  # No op to name.
    return float(np.sum([np.asarray(loss, dtype=np.float64) for loss in
                         get_regularization_losses(scope)]))


def add_loss(loss: Any,
             loss_collection: Any = ops.GraphKeys.LOSSES) -> None:
    """Adds `loss` to this process's `loss_collection` (unless None)."""
    if loss_collection is not None:
        ops.add_to_collection(loss_collection, loss)


def get_losses(scope: str | None = None,
               loss_collection: Any = ops.GraphKeys.LOSSES) -> list:
    """The items of `loss_collection` whose name `scope` matches."""
    return ops.get_collection(loss_collection, scope)
