"""Server-side optimizers, as tf.compat.v1.train's: the update rules,
hyper-parameters, defaults and slot names are TensorFlow's.

    opt = vs.train.AdagradOptimizer(0.1)
    opt.apply_gradients([(grad_w, w), (vs.IndexedSlices(rows, ids), emb)],
                        global_step=vs.get_or_create_global_step())

apply_gradients sends every gradient (and the global step's increment) as
one atomic batch; the server keeps the slots (`w/Adagrad`, `w/Momentum`,
`w/Adam` and `w/Adam_1`, ...) next to each variable, created on demand.
Sparse gradients (IndexedSlices) touch only their rows; duplicate indices are
summed first. Adam's beta powers are per variable (`w/Adam_beta1_power`),
and sparse Adam updates only the rows given (as LazyAdam).
"""

from varscope import _varscope
from varscope import client
from varscope import train
from varscope.indexed_slices import IndexedSlices
from varscope.variables import apply_updates


class Optimizer:
    """The base of the optimizers: apply_gradients and the slot names."""

    _KIND = None
    _SLOTS = ()

    def __init__(self, learning_rate, use_locking=False, name=None, **params):
        self._learning_rate = learning_rate
        self._params = params
        self._name = name or self._KIND

    def get_name(self):
        return self._name

    def get_slot_names(self):
        """The slot suffixes this optimizer keeps per variable."""
        return list(self._SLOTS)

    def _spec(self):
        rate = self._learning_rate
        return _varscope.OptimizerSpec(
            self._KIND, float(rate() if callable(rate) else rate),
            **self._params)

    def _gradient_specs(self, grads_and_vars):
        """[(part handle, UpdateSpec)] for the (gradient, variable) pairs,
        skipping None gradients (as TensorFlow)."""
        spec = self._spec()
        pairs = []
        for grad, var in grads_and_vars:
            if grad is None:
                continue
            if isinstance(grad, IndexedSlices):
                pairs += var._sparse_specs("apply_gradient", grad,
                                           optimizer=spec)
            else:
                pairs += var._specs("apply_gradient", grad, optimizer=spec)
        if not pairs:
            raise ValueError("No gradients provided for any variable")
        return pairs

    def apply_gradients(self, grads_and_vars, global_step=None, name=None):
        """Applies (gradient, variable) pairs, gradients as arrays or
        IndexedSlices, in one atomic step; with `global_step` (a Variable)
        it is incremented in the same step."""
        pairs = self._gradient_specs(grads_and_vars)
        if global_step is not None:
            pairs += global_step._specs("assign_add", 1)
        apply_updates(pairs)


class GradientDescentOptimizer(Optimizer):
    """var -= learning_rate * grad."""
    _KIND = "GradientDescent"

    def __init__(self, learning_rate, use_locking=False,
                 name="GradientDescent"):
        super().__init__(learning_rate, use_locking, name)


class MomentumOptimizer(Optimizer):
    """TF's momentum, optionally Nesterov's. Slot: Momentum."""
    _KIND = "Momentum"
    _SLOTS = ("Momentum",)

    def __init__(self, learning_rate, momentum, use_locking=False,
                 name="Momentum", use_nesterov=False):
        super().__init__(learning_rate, use_locking, name, momentum=momentum,
                         use_nesterov=use_nesterov)


class AdagradOptimizer(Optimizer):
    """Adagrad. Slot: Adagrad."""
    _KIND = "Adagrad"
    _SLOTS = ("Adagrad",)

    def __init__(self, learning_rate, initial_accumulator_value=0.1,
                 use_locking=False, name="Adagrad"):
        super().__init__(learning_rate, use_locking, name,
                         initial_accumulator_value=initial_accumulator_value)


class AdamOptimizer(Optimizer):
    """Adam. Slots: Adam (m), Adam_1 (v)."""
    _KIND = "Adam"
    _SLOTS = ("Adam", "Adam_1")

    def __init__(self, learning_rate=0.001, beta1=0.9, beta2=0.999,
                 epsilon=1e-08, use_locking=False, name="Adam"):
        super().__init__(learning_rate, use_locking, name, beta1=beta1,
                         beta2=beta2, epsilon=epsilon)


class RMSPropOptimizer(Optimizer):
    """RMSProp. Slots: RMSProp (ms), RMSProp_1 (mom), RMSProp_2 (mg, when
    centered)."""
    _KIND = "RMSProp"

    def __init__(self, learning_rate, decay=0.9, momentum=0.0, epsilon=1e-10,
                 use_locking=False, centered=False, name="RMSProp"):
        super().__init__(learning_rate, use_locking, name, decay=decay,
                         momentum=momentum, epsilon=epsilon,
                         centered=centered)
        self._SLOTS = ("RMSProp", "RMSProp_1") + (
            ("RMSProp_2",) if centered else ())


class FtrlOptimizer(Optimizer):
    """FTRL-Proximal. Slots: Ftrl (accumulator), Ftrl_1 (linear)."""
    _KIND = "Ftrl"
    _SLOTS = ("Ftrl", "Ftrl_1")

    def __init__(self, learning_rate, learning_rate_power=-0.5,
                 initial_accumulator_value=0.1,
                 l1_regularization_strength=0.0,
                 l2_regularization_strength=0.0, use_locking=False,
                 name="Ftrl"):
        super().__init__(
            learning_rate, use_locking, name,
            learning_rate_power=learning_rate_power,
            initial_accumulator_value=initial_accumulator_value,
            l1_regularization_strength=l1_regularization_strength,
            l2_regularization_strength=l2_regularization_strength)


class SyncReplicasOptimizer:
    """Synchronous training over replicas, as TF's SyncReplicasOptimizer.

    Each worker computes gradients at the global step it read (`local_step`)
    and hands them to apply_gradients. The server sums the gradients for the
    current step until `replicas_to_aggregate` workers contributed, then
    applies their mean once with `opt` and increments the global step, all
    in one atomic update. A gradient computed at an older step (a straggler)
    is dropped and counted. Workers wait for the step with wait_for_step.

        sync = vs.train.SyncReplicasOptimizer(
            vs.train.GradientDescentOptimizer(0.1), replicas_to_aggregate=3,
            total_num_replicas=4)
        step = vs.global_step()
        while step < last:
            grads = compute(...)
            sync.apply_gradients(zip(grads, variables), local_step=step)
            step = sync.wait_for_step(step + 1, timeout=60)

    The accumulator lives in the server's memory (as TF's): contributions of
    a step that had not applied when the server restarted are lost, and the
    waiting workers time out (DeadlineExceededError) and go on from the
    current global step.
    """

    def __init__(self, opt, replicas_to_aggregate, total_num_replicas=None,
                 use_locking=False, name="sync_replicas"):
        if replicas_to_aggregate < 1:
            raise ValueError("replicas_to_aggregate must be at least 1")
        self._opt = opt
        self._replicas_to_aggregate = replicas_to_aggregate
        self._total_num_replicas = total_num_replicas or replicas_to_aggregate
        self._name = name

    def get_name(self):
        return self._name

    def apply_gradients(self, grads_and_vars, global_step=None,
                        local_step=None, name=None):
        """Contributes gradients computed at global step `local_step`.

        `global_step` is the global step Variable (default: the root scope's
        "global_step", created if missing). Returns a dict: "outcome"
        ("accumulated", "applied" when this contribution completed the step,
        or "stale" when it was dropped), "global_step" after the call,
        "accumulated" (contributions to the current step so far) and
        "stale_dropped" (stale contributions dropped so far).
        """
        if local_step is None:
            raise ValueError("local_step: the global step the gradients were "
                             "computed at, is required")
        if global_step is None:
            global_step = train.get_or_create_global_step()
        pairs = self._opt._gradient_specs(grads_and_vars)
        return global_step._handle().client.sync_apply(
            self._name, int(local_step), self._replicas_to_aggregate,
            global_step._shared_name, [spec for _, spec in pairs])

    def wait_for_step(self, step, timeout=None, global_step=None):
        """Blocks until the global step is at least `step`; returns it.
        Raises DeadlineExceededError after `timeout` seconds (default: the
        client's timeout)."""
        if global_step is None:
            global_step = train.get_or_create_global_step()
        if timeout is None:
            timeout = client.default_client().timeout
        return global_step._handle().client.wait_for_step(
            global_step._shared_name, int(step), timeout)
