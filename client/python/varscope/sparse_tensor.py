"""SparseTensor: sparse ids and weights, as tf.SparseTensor."""

from __future__ import annotations

from typing import Any

import numpy as np

from varscope.tensor_shape import TensorShape


class SparseTensor:
    """`values[i]` at position `indices[i]` of a tensor of `dense_shape`
    (numpy arrays: indices int64 [N, rank], values [N], dense_shape int64
    [rank]). Raises ValueError if their shapes do not fit together."""

    def __init__(self, indices: Any, values: Any, dense_shape: Any) -> None:
        self.dense_shape = np.asarray(dense_shape, dtype=np.int64)
        self.values = np.asarray(values)
        indices = np.asarray(indices, dtype=np.int64)
        if indices.size == 0:
            indices = indices.reshape(0, self.dense_shape.size)
        self.indices = indices
        if (self.dense_shape.ndim != 1 or self.values.ndim != 1 or
                indices.ndim != 2 or
                indices.shape != (self.values.size, self.dense_shape.size)):
            raise ValueError(
                "A SparseTensor needs indices of shape [N, rank], values of "
                "shape [N] and dense_shape of shape [rank]; got indices %s, "
                "values %s and dense_shape %s" %
                (TensorShape(indices.shape), TensorShape(self.values.shape),
                 TensorShape(self.dense_shape.shape)))

    @property
    def shape(self) -> TensorShape:
        return TensorShape(self.dense_shape.tolist())

    def __repr__(self):
        return "SparseTensor(indices=%s, values=%s, dense_shape=%s)" % (
            self.indices.tolist(), self.values.tolist(),
            self.dense_shape.tolist())


# TensorFlow's name for the value a session returned; here the same thing.
SparseTensorValue = SparseTensor
