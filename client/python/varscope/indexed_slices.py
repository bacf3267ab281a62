"""IndexedSlices: a sparse update or gradient, as tf.IndexedSlices."""

import numpy as np


class IndexedSlices:
    """Rows `values[i]` for rows `indices[i]` of a variable's first axis.

    Duplicate indices are summed where rows add up (scatter_add, sparse
    gradients), as TensorFlow does; scatter_update keeps the last.
    """

    def __init__(self, values, indices, dense_shape=None):
        self.values = values
        self.indices = indices
        self.dense_shape = dense_shape

    def __repr__(self):
        return "IndexedSlices(indices=%s, values=%s)" % (
            np.asarray(self.indices).tolist(), np.asarray(self.values).shape)
