"""Partitioners under TensorFlow's names (tf.compat.v1.*_partitioner).

A partitioner is a callable `partitioner(shape=..., dtype=...)` returning the
number of parts per axis (a list, one entry above 1 at most). Those made here
are evaluated by the server when it creates a variable, with the same C++
code as their `__call__`. Any other callable may be passed to get_variable
too: it is called in Python and its list sent to the server.
"""

from varscope import _varscope
from varscope import dtypes


class Partitioner:
    """A TensorFlow partitioner the server evaluates (see module doc)."""

    def __init__(self, spec):
        self._spec = spec

    def __call__(self, shape, dtype):
        """Parts per axis of a variable of fully defined `shape` and `dtype`.

        Raises errors.InvalidArgumentError (a ValueError) with TensorFlow's
        texts, e.g. for an axis out of range.
        """
        return _varscope.compute_partitions(
            self._spec, [int(d) for d in shape],
            dtypes.as_dtype(dtype).as_datatype_enum)

    def __repr__(self):
        return "<varscope.Partitioner %r>" % (self._spec,)


def fixed_size_partitioner(num_shards, axis=0):
    """`num_shards` parts along `axis` (fewer if the axis is shorter)."""
    return Partitioner(
        _varscope.PartitionerSpec.fixed_size(num_shards=num_shards, axis=axis))


def min_max_variable_partitioner(max_partitions=1, axis=0,
                                 min_slice_size=256 << 10,
                                 bytes_per_string_element=16):
    """Parts along `axis` of at least `min_slice_size` bytes each, at most
    `max_partitions` of them. `bytes_per_string_element` is accepted for
    compatibility (Varscope has no string variables)."""
    return Partitioner(_varscope.PartitionerSpec.min_max_variable(
        max_partitions=max_partitions, axis=axis,
        min_slice_size=min_slice_size))


def variable_axis_size_partitioner(max_shard_bytes, axis=0,
                                   bytes_per_string_element=16,
                                   max_shards=None):
    """Parts along `axis` of at most `max_shard_bytes` bytes each (but at
    least one slice of the axis per part), at most `max_shards` of them.

    Raises ValueError (TensorFlow's texts) for a non-positive
    max_shard_bytes, bytes_per_string_element or max_shards.
    """
    if max_shard_bytes < 1 or bytes_per_string_element < 1:
        raise ValueError(
            "Both max_shard_bytes and bytes_per_string_element must be "
            "positive.")
    if max_shards and max_shards < 1:
        raise ValueError("max_shards must be positive.")
    return Partitioner(_varscope.PartitionerSpec.variable_axis_size(
        max_shard_bytes=max_shard_bytes, axis=axis,
        max_shards=max_shards or 0))
