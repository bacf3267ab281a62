"""Varscope: TensorFlow's variable_scope/get_variable over a parameter server.

    import varscope as vs
    vs.connect("127.0.0.1:7070")
    with vs.variable_scope("my_scope", reuse=vs.AUTO_REUSE):
        w = vs.get_variable("weights", shape=[10, 1],
                            initializer=vs.zeros_initializer())
    w.read(); w.assign_add(dx)

Beyond get_variable: batched reads and updates (batch_read, batch_update),
sparse rows (Variable.sparse_read, scatter_add/scatter_update with
IndexedSlices), server-side optimizers and synchronous replicas under
varscope.train; name scopes, collections, Variable, local variables,
templates, regularizers (varscope.losses, varscope.keras.regularizers),
custom getters and embedding lookups (varscope.nn) for porting TensorFlow 1
models.

The names, signatures and errors are tf.compat.v1's (see the modules).
"""

from varscope import constraints
from varscope import _varscope
from varscope import errors
from varscope import keras
from varscope import losses
from varscope import nn
from varscope import train
from varscope.batch import BatchUpdate
from varscope.batch import batch_read
from varscope.batch import batch_update
from varscope.client import Client
from varscope.client import connect
from varscope.client import delete_variable
from varscope.client import list_variables
from varscope.dtypes import DType
from varscope.dtypes import as_dtype
from varscope.dtypes import bfloat16
from varscope.dtypes import bool  # pylint: disable=redefined-builtin
from varscope.dtypes import double
from varscope.dtypes import float16
from varscope.dtypes import float32
from varscope.dtypes import float64
from varscope.dtypes import half
from varscope.dtypes import int16
from varscope.dtypes import int32
from varscope.dtypes import int64
from varscope.dtypes import int8
from varscope.dtypes import uint8
from varscope.embedding_variable import CounterFilter
from varscope.embedding_variable import EmbeddingVariable
from varscope.embedding_variable import EmbeddingVariableOption
from varscope.embedding_variable import GlobalStepEvict
from varscope.embedding_variable import get_embedding_variable
from varscope.indexed_slices import IndexedSlices
from varscope.initializers import constant_initializer
from varscope.initializers import glorot_normal_initializer
from varscope.initializers import glorot_uniform_initializer
from varscope.initializers import identity_initializer
from varscope.initializers import ones_initializer
from varscope.initializers import orthogonal_initializer
from varscope.initializers import random_normal_initializer
from varscope.initializers import random_uniform_initializer
from varscope.initializers import truncated_normal_initializer
from varscope.initializers import variance_scaling_initializer
from varscope.initializers import zeros_initializer
from varscope.ops import GraphKeys
from varscope.ops import add_to_collection
from varscope.ops import add_to_collections
from varscope.ops import get_collection
from varscope.ops import get_collection_ref
from varscope.ops import global_variables
from varscope.ops import local_variables
from varscope.ops import model_variables
from varscope.ops import name_scope
from varscope.ops import reset_default_graph
from varscope.ops import trainable_variables
from varscope.partitioners import fixed_size_partitioner
from varscope.partitioners import min_max_variable_partitioner
from varscope.partitioners import variable_axis_size_partitioner
from varscope.regularizers import l1_l2_regularizer
from varscope.regularizers import l1_regularizer
from varscope.regularizers import l2_regularizer
from varscope.regularizers import no_regularizer
from varscope.sparse_tensor import SparseTensor
from varscope.sparse_tensor import SparseTensorValue
from varscope.template import make_template
from varscope.tensor_shape import TensorShape
from varscope.train import create_global_step
from varscope.train import get_global_step
from varscope.train import get_or_create_global_step
from varscope.train import global_step
from varscope.train import increment_global_step
from varscope.variable_scope import AUTO_REUSE
from varscope.variable_scope import VariableScope
from varscope.variable_scope import get_local_variable
from varscope.variable_scope import get_variable
from varscope.variable_scope import get_variable_scope
from varscope.variable_scope import variable_scope
from varscope.variables import PartitionedVariable
from varscope.variables import Variable
from varscope.variables import cast

# The version of the C++ build (CMakeLists.txt), as `varscoped --version`.
__version__ = _varscope.__version__
