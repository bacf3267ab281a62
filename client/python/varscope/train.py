"""The global step, as tf.compat.v1.train: an int64 scalar "global_step" at
the root scope (zeros, not trainable), shared by every worker of a server."""

from varscope import _varscope
from varscope import errors
from varscope import variables
from varscope.batch import batch_read
from varscope.client import default_client


def _global_step(reuse):
    return variables.wrap(_varscope.get_global_step(
        default_client()._connection(), reuse))


def get_or_create_global_step():
    """The global step Variable, created (atomically) if missing."""
    return _global_step(_varscope.Reuse.AUTO_REUSE)


def get_global_step():
    """The global step Variable, or None if it does not exist."""
    try:
        return _global_step(_varscope.Reuse.TRUE)
    except errors.NotFoundError:
        return None


def create_global_step():
    """Creates the global step Variable.

    Raises errors.AlreadyExistsError (a ValueError), TensorFlow's
    '"global_step" already exists.', if it exists.
    """
    try:
        return _global_step(_varscope.Reuse.FALSE)
    except errors.AlreadyExistsError:
        raise errors.AlreadyExistsError(
            None, None, '"global_step" already exists.') from None


def global_step(sess=None, global_step_tensor=None):
    """The global step's current value (an int), as TensorFlow's
    global_step(sess, global_step_tensor): the value of `global_step_tensor`
    (a Variable, or its full name, ":0" optional). `sess` is accepted and
    ignored (there is no session). Without global_step_tensor, the root
    "global_step", created if missing."""
    del sess  # Values are read from the server directly.
    if global_step_tensor is None:
        return int(get_or_create_global_step().read())
    if isinstance(global_step_tensor, str):
        name = global_step_tensor.split(":")[0]
        return int(batch_read([name])[name])
    return int(global_step_tensor.read())


def increment_global_step(n=1):
    """Adds `n` to the global step atomically; returns the new value."""
    return int(get_or_create_global_step().assign_add(n, read_value=True))


# The optimizers live in their own module (which uses the global step
# helpers above) and are reached as vs.train.*Optimizer, as in TensorFlow.
from varscope.optimizers import AdagradOptimizer  # noqa: E402
from varscope.optimizers import AdamOptimizer  # noqa: E402
from varscope.optimizers import FtrlOptimizer  # noqa: E402
from varscope.optimizers import GradientDescentOptimizer  # noqa: E402
from varscope.optimizers import MomentumOptimizer  # noqa: E402
from varscope.optimizers import Optimizer  # noqa: E402
from varscope.optimizers import RMSPropOptimizer  # noqa: E402
from varscope.optimizers import SyncReplicasOptimizer  # noqa: E402
from varscope.checkpoints import CheckpointReader  # noqa: E402
from varscope.checkpoints import Saver  # noqa: E402
from varscope.checkpoints import checkpoint_exists  # noqa: E402
from varscope.checkpoints import get_checkpoint_state  # noqa: E402
from varscope.checkpoints import init_from_checkpoint  # noqa: E402
from varscope.checkpoints import latest_checkpoint  # noqa: E402
from varscope.checkpoints import list_variables  # noqa: E402
from varscope.checkpoints import load_checkpoint  # noqa: E402
from varscope.checkpoints import load_variable  # noqa: E402
from varscope.checkpoints import update_checkpoint_state  # noqa: E402
NewCheckpointReader = CheckpointReader
from varscope.learning_rate_decay import cosine_decay  # noqa: E402
from varscope.learning_rate_decay import exponential_decay  # noqa: E402
from varscope.learning_rate_decay import piecewise_constant  # noqa: E402
from varscope.learning_rate_decay import polynomial_decay  # noqa: E402
