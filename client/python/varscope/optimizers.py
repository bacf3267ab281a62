"""Server-side optimizers, as tf.compat.v1.train's: the update rules,
hyper-parameters, defaults and slot names are TensorFlow's.

    opt = vs.train.AdagradOptimizer(0.1)
    opt.apply_gradients([(grad_w, w), (vs.IndexedSlices(rows, ids), emb)],
                        global_step=vs.get_or_create_global_step())

apply_gradients sends every gradient (and the global step's increment) as
one atomic batch; the server keeps the slots next to each variable, named
after the optimizer as TensorFlow names them (`w/Adagrad`, `w/Momentum`,
`w/Adam` and `w/Adam_1`; with name="MyAdam", `w/MyAdam` and `w/MyAdam_1`),
created on demand. Sparse gradients (IndexedSlices) touch only their rows;
duplicate indices are summed first; the first step of this optimizer on a
partitioned variable creates the slots of all its parts, as TensorFlow
creates them for every part. Adam keeps TensorFlow's non-slot beta1_power
and beta2_power (one pair per optimizer, advanced once per step); sparse
Adam updates only the rows given (as LazyAdam).

learning_rate is a number, a schedule (vs.train.exponential_decay, ...: the
server evaluates it from the global step in the same atomic step) or a
callable returning the rate (called here at each step).

On a cluster, when a schedule's global step or Adam's beta powers live on
another shard than a variable of the step, the step first reads them (one
batch read) and passes their values: each shard's part of the step stays
atomic, and all parts use the same values.
"""

import numpy as np

from varscope import _varscope
from varscope import client
from varscope import dtypes
from varscope import initializers
from varscope import ops
from varscope import train
from varscope import variables as variables_lib
from varscope.embedding_variable import EmbeddingVariable
from varscope.indexed_slices import IndexedSlices
from varscope.learning_rate_decay import LearningRateSchedule
from varscope.variables import apply_updates


def _root_get(name, dtype, value, trainable=False):
    """Gets or creates the variable `name` (a full name) holding `value` at
    creation."""
    return variables_lib.wrap(_varscope.get_variable(
        client.default_client()._connection(),
        variables_lib.root_scope(_varscope.Reuse.AUTO_REUSE), name, shape=[],
        dtype=dtype.as_datatype_enum,
        initializer=initializers.constant_spec(
            dtypes.to_numpy(value, dtype)),
        trainable=trainable, partitioner=None))


class Optimizer:
    """The base of the optimizers: apply_gradients and the slots."""

    _KIND = None
    _SLOTS = ()  # TensorFlow's slot names, in the order it creates them

    def __init__(self, learning_rate, use_locking=False, name=None, **params):
        if not name:
            raise ValueError("Must specify the optimizer name")
        self._learning_rate = learning_rate
        self._params = params
        self._name = name
        self._slotted = set()  # parts this optimizer made slots for

    def get_name(self):
        return self._name

    def get_slot_names(self):
        """TensorFlow's names of the slots ("m", "v", ...), sorted."""
        return sorted(self._SLOTS)

    def get_slot(self, var, name):
        """The slot `name` (see get_slot_names) of `var`, a Variable or
        part, or None if it does not exist (yet)."""
        if name not in self._SLOTS:
            return None
        index = list(self._SLOTS).index(name)
        suffix = self._name if index == 0 else "%s_%d" % (self._name, index)
        scope = _varscope.VariableScope()
        scope.reuse = _varscope.Reuse.TRUE
        try:
            return variables_lib.wrap(_varscope.get_variable(
                var._handle().client, scope,
                "%s/%s" % (var._shared_name, suffix), shape=None,
                dtype=var.dtype.as_datatype_enum, initializer=None,
                trainable=None, partitioner=None))
        except ValueError:
            return None

    def _inputs(self, grads_and_vars):
        """{role: Variable} of the scalars a step reads (the schedule's
        global step, ...), created if needed."""
        rate = self._learning_rate
        if isinstance(rate, LearningRateSchedule):
            return {"global_step": rate.global_step}
        return {}

    def _spec(self, values):
        """The server spec; `values` replaces reading the inputs."""
        rate = self._learning_rate
        params = dict(self._params, name=self._name)
        if isinstance(rate, LearningRateSchedule):
            params["schedule"] = rate._spec_with(values.get("global_step"))
            rate = rate.initial_learning_rate
        elif callable(rate):
            rate = rate()
        params.update(self._input_params(values))
        return _varscope.OptimizerSpec(self._KIND, float(rate), **params)

    def _input_params(self, values):
        return {}

    def _gradient_specs(self, grads_and_vars, all_parts=True, values=None,
                        every_part=False):
        """[(part handle, UpdateSpec)] for the (gradient, variable) pairs,
        skipping None gradients (as TensorFlow), with the updates that go
        with them (Adam's beta powers when read here). With `all_parts`, the
        first sparse step on a partitioned variable creates the slots of all
        its parts. With `every_part`, a sparse gradient of a partitioned
        variable steps every part, in order (empty steps for the parts
        without rows), as TensorFlow's gradient has an IndexedSlices per
        part. `values`: the inputs' values, read before (then no pair is
        needed)."""
        grads_and_vars = [(g, v) for g, v in grads_and_vars if g is not None]
        if not grads_and_vars and values is None:
            raise ValueError("No gradients provided for any variable")
        self._check_slot_placement(grads_and_vars)
        inputs = self._inputs(grads_and_vars)
        if values is None:
            values = self._read_remote_inputs(grads_and_vars, inputs)
        spec = self._spec(values)
        pairs = []
        for grad, var in grads_and_vars:
            if isinstance(grad, IndexedSlices):
                if var.constraint is not None:
                    raise RuntimeError(
                        "Cannot use a constraint function on a sparse "
                        "variable.")
                specs = var._sparse_specs("apply_gradient", grad,
                                          optimizer=spec)
                if every_part and isinstance(
                        var, variables_lib.PartitionedVariable):
                    stepped = {impl.name: (impl, s) for impl, s in specs}
                    specs = [stepped.get(part._shared_name) or
                             _empty_step(part, spec)[0] for part in var]
                pairs += specs
                if all_parts:
                    pairs += self._slot_specs(var, pairs, spec)
            else:
                pairs += var._specs("apply_gradient", grad, optimizer=spec)
        for impl, _ in pairs:
            self._slotted.add(impl.name)
        return pairs + self._advance_specs(inputs, values)

    def _slot_specs(self, var, pairs, spec):
        """Empty sparse steps for the parts of `var` that neither `pairs` nor
        an earlier step of this optimizer touched: they create those parts'
        slots."""
        if not isinstance(var, variables_lib.PartitionedVariable):
            return []
        touched = {impl.name for impl, _ in pairs}
        out = []
        for part in var:
            name = part._shared_name
            if name in touched or name in self._slotted:
                continue
            out += _empty_step(part, spec)
        return out

    def _check_slot_placement(self, grads_and_vars):
        """A cluster places slots by TensorFlow's default slot names next to
        their variable; ValueError for a name that would put one elsewhere
        (the server creates slots on their variable's shard)."""
        if not self._SLOTS or self._name == self._KIND:
            return
        connection = client.default_client()._connection()
        for _, var in grads_and_vars:
            for name in _part_names(var):
                slot = "%s/%s" % (name, self._name)
                if connection.shard_of(slot) != connection.shard_of(name):
                    raise ValueError(
                        "Optimizer name %r would place slot %s on another "
                        "shard than %s: on a cluster, use the default name "
                        "%r" % (self._name, slot, name, self._KIND))

    def _read_remote_inputs(self, grads_and_vars, inputs):
        """{role: value} of the inputs when some variable of the step is on
        another shard than an input (one batch read); else {} (the server
        reads them in the step)."""
        if not inputs:
            return {}
        connection = client.default_client()._connection()
        names = [n for _, v in grads_and_vars for n in _part_names(v)]
        shards = {connection.shard_of(n) for n in names}
        if all(shards == {connection.shard_of(v._shared_name)}
               for v in inputs.values()):
            return {}
        return self._read_inputs(inputs)[0]

    def _read_inputs(self, inputs, extra=()):
        """{role: value} of the inputs, and the values of the variables
        `extra`, by name: one batch read."""
        names = ([v._shared_name for v in inputs.values()] +
                 [v._shared_name for v in extra])
        if not names:  # (an empty batch read would read every variable)
            return {}, []
        client._check_process()
        connection = client.default_client()._connection()
        read = {name: value
                for name, value, _ in connection.batch_read(names, "")}
        return ({role: float(read[v._shared_name])
                 for role, v in inputs.items()},
                [read[v._shared_name] for v in extra])

    def _advance_specs(self, inputs, values):
        return []

    def apply_gradients(self, grads_and_vars, global_step=None, name=None):
        """Applies (gradient, variable) pairs, gradients as arrays or
        IndexedSlices, in one atomic step; with `global_step` (a Variable)
        it is incremented in the same step. Then applies the client-side
        (callable) constraints of the variables.

        Embedding variables (IndexedSlices gradients only) take one sparse
        step each, exactly once, before the step of the other variables
        (which advances Adam's beta powers and the global step): the whole
        is not atomic. Their rows' last step is the global step's value
        before this call (without one, the variable counts its own
        steps)."""
        grads_and_vars = list(grads_and_vars)
        embedding = [(g, v) for g, v in grads_and_vars
                     if isinstance(v, EmbeddingVariable)]
        if embedding:
            pairs = self._embedding_step(grads_and_vars, embedding,
                                         global_step)
        else:
            pairs = self._gradient_specs(grads_and_vars)
        if global_step is not None:
            pairs += global_step._specs("assign_add", 1)
        if pairs:
            apply_updates(pairs)
        for grad, var in grads_and_vars:
            constraint = variables_lib.client_constraint(var)
            if grad is None or constraint is None:
                continue
            for part in (var if isinstance(
                    var, variables_lib.PartitionedVariable) else [var]):
                part.assign(constraint(part.read()))

    def _embedding_step(self, grads_and_vars, embedding, global_step):
        """Applies the steps of the embedding variables, with the
        optimizer's inputs read by value, and returns the specs of the
        others' step (advancing the inputs)."""
        if all(g is None for g, _ in grads_and_vars):
            raise ValueError("No gradients provided for any variable")
        inputs = self._inputs(grads_and_vars)
        values, step = self._read_inputs(
            inputs, [global_step] if global_step is not None else [])
        spec = self._spec(values)
        for grad, var in embedding:
            if grad is None:
                continue
            if not isinstance(grad, IndexedSlices):
                raise TypeError(
                    "The gradient of embedding variable %s must be "
                    "IndexedSlices, not %s" % (var.name, type(grad).__name__))
            var._apply(spec, grad, int(step[0]) if step else None)
        others = [(g, v) for g, v in grads_and_vars
                  if not isinstance(v, EmbeddingVariable)]
        return self._gradient_specs(others, values=values)


def _empty_step(part, spec):
    """The specs of a sparse step of optimizer `spec` on no rows of
    `part`."""
    rows = np.zeros((0,) + tuple(part.shape[1:]), part.dtype.as_numpy_dtype)
    return part._specs("apply_gradient", rows,
                       indices=np.zeros(0, np.int64), optimizer=spec)


def _part_names(var):
    if isinstance(var, variables_lib.PartitionedVariable):
        return [part._shared_name for part in var]
    return [var._shared_name]


class GradientDescentOptimizer(Optimizer):
    """var -= learning_rate * grad."""
    _KIND = "GradientDescent"

    def __init__(self, learning_rate, use_locking=False,
                 name="GradientDescent"):
        super().__init__(learning_rate, use_locking, name)


class MomentumOptimizer(Optimizer):
    """TF's momentum, optionally Nesterov's. Slot: momentum (`w/Momentum`)."""
    _KIND = "Momentum"
    _SLOTS = ("momentum",)

    def __init__(self, learning_rate, momentum, use_locking=False,
                 name="Momentum", use_nesterov=False):
        super().__init__(learning_rate, use_locking, name, momentum=momentum,
                         use_nesterov=use_nesterov)


class AdagradOptimizer(Optimizer):
    """Adagrad. Slot: accumulator (`w/Adagrad`)."""
    _KIND = "Adagrad"
    _SLOTS = ("accumulator",)

    def __init__(self, learning_rate, initial_accumulator_value=0.1,
                 use_locking=False, name="Adagrad"):
        super().__init__(learning_rate, use_locking, name,
                         initial_accumulator_value=initial_accumulator_value)


class AdamOptimizer(Optimizer):
    """Adam. Slots: m (`w/Adam`), v (`w/Adam_1`). Non-slot variables:
    TensorFlow's beta1_power and beta2_power (float32 scalars starting at
    beta1 and beta2, one pair per optimizer, named as in a TensorFlow
    graph: under the name scope current at the first step, made unique in
    the process, so its second Adam takes `beta1_power_1`, ...),
    read by every variable's step and advanced once per apply_gradients."""
    _KIND = "Adam"
    _SLOTS = ("m", "v")

    def __init__(self, learning_rate=0.001, beta1=0.9, beta2=0.999,
                 epsilon=1e-08, use_locking=False, name="Adam"):
        super().__init__(learning_rate, use_locking, name, beta1=beta1,
                         beta2=beta2, epsilon=epsilon)
        self._beta1, self._beta2 = beta1, beta2
        self._powers = None

    def _get_beta_accumulators(self):
        """(beta1_power, beta2_power) Variables, None before the first
        step (as TensorFlow's)."""
        return self._powers

    def _inputs(self, grads_and_vars):
        inputs = super()._inputs(grads_and_vars)
        if self._powers is None:
            # TensorFlow's names: made unique in the graph, under the
            # current name scope.
            self._powers = tuple(
                _root_get(ops.unique_name(n), dtypes.float32, beta)
                for n, beta in (("beta1_power", self._beta1),
                                ("beta2_power", self._beta2)))
        inputs["beta1_power"], inputs["beta2_power"] = self._powers
        return inputs

    def _input_params(self, values):
        return {role: values.get(role, var._shared_name)
                for role, var in zip(("beta1_power", "beta2_power"),
                                     self._powers)}

    def _advance_specs(self, inputs, values):
        """When the step was given the powers' values, it advances them
        itself: one atomic multiply on their shard."""
        if not values:
            return []
        return [spec for power, beta in zip(self._powers,
                                            (self._beta1, self._beta2))
                for spec in power._specs("assign_mul", beta)]


class RMSPropOptimizer(Optimizer):
    """RMSProp. Slots in TensorFlow's order: rms (`w/RMSProp`), mg when
    centered, momentum (`w/RMSProp_1`, `w/RMSProp_2`)."""
    _KIND = "RMSProp"

    def __init__(self, learning_rate, decay=0.9, momentum=0.0, epsilon=1e-10,
                 use_locking=False, centered=False, name="RMSProp"):
        super().__init__(learning_rate, use_locking, name, decay=decay,
                         momentum=momentum, epsilon=epsilon,
                         centered=centered)
        self._SLOTS = ("rms",) + (("mg",) if centered else ()) + (
            "momentum",)


class FtrlOptimizer(Optimizer):
    """FTRL-Proximal. Slots: accum (`w/Ftrl`), linear (`w/Ftrl_1`)."""
    _KIND = "Ftrl"
    _SLOTS = ("accum", "linear")

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
    current global step. On a cluster, each shard holding variables of the
    step aggregates and applies their gradients, and the global step
    advances once every one of them applied the step.
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
        # Every contribution to a step names the same variables: every part
        # of a partitioned variable, whatever rows a worker's gradient has.
        pairs = self._opt._gradient_specs(grads_and_vars, all_parts=False,
                                          every_part=True)
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
