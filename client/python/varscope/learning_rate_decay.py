"""Learning-rate schedules, as tf.compat.v1.train's exponential_decay,
piecewise_constant, polynomial_decay and cosine_decay.

    step = vs.train.get_or_create_global_step()
    lr = vs.train.exponential_decay(0.1, step, decay_steps=1000,
                                    decay_rate=0.96, staircase=True)
    opt = vs.train.GradientDescentOptimizer(lr)
    opt.apply_gradients(grads_and_vars, global_step=step)
    lr()   # the rate at the current global step, for logging

Where TensorFlow returns a tensor computed from the global step, these
return a schedule object. Given to an optimizer, the server evaluates it
(TensorFlow's formula, in float64) from the global step's value read in the
same atomic step: no extra call per step, and every variable of a step uses
the rate of one global step (the value before the step's own increment, as
in TensorFlow). Called, it reads the global step and returns the rate.

`global_step` is the global step Variable (any integer or floating scalar
variable counting steps); TensorFlow's tensors have no equivalent here.
"""

from varscope import _varscope


class LearningRateSchedule:
    """A learning rate decaying with a global step Variable: given to an
    optimizer as learning_rate, evaluated by the server in each step; called,
    the rate at the global step's current value (a float)."""

    def __init__(self, kind, learning_rate, global_step, **params):
        if global_step is None:
            raise ValueError(self._MISSING_STEP[kind])
        if isinstance(global_step, (int, float)):
            raise TypeError(
                "global_step must be the global step Variable (the server "
                "reads it in every step), not a number")
        self._learning_rate = float(learning_rate)
        self._global_step = global_step
        self._spec = _varscope.ScheduleSpec(
            kind, global_step._shared_name, **params)

    _MISSING_STEP = {
        "exponential_decay": "global_step is required for exponential_decay.",
        "piecewise_constant": "x (the global step) is required for "
                              "piecewise_constant.",
        "polynomial_decay": "global_step is required for polynomial_decay.",
        "cosine_decay": "cosine decay requires global_step",
    }

    @property
    def global_step(self):
        return self._global_step

    @property
    def initial_learning_rate(self):
        return self._learning_rate

    def _spec_with(self, global_step_value=None):
        """The server spec: reading the global step, or with its value."""
        if global_step_value is None:
            return self._spec
        return self._spec.with_global_step(float(global_step_value))

    def value_at(self, step):
        """The rate at global step `step`."""
        return self._spec.learning_rate_at(self._learning_rate, float(step))

    def __call__(self):
        return self.value_at(self._global_step.read())


def exponential_decay(learning_rate, global_step, decay_steps, decay_rate,
                      staircase=False, name=None):
    """learning_rate * decay_rate ^ (global_step / decay_steps), the
    exponent floored when `staircase`."""
    return LearningRateSchedule(
        "exponential_decay", learning_rate, global_step,
        decay_steps=float(decay_steps), decay_rate=float(decay_rate),
        staircase=bool(staircase))


def piecewise_constant(x, boundaries, values, name=None):
    """values[0] while x <= boundaries[0], values[i] while boundaries[i-1] <
    x <= boundaries[i], values[-1] beyond; `x` is the global step Variable.
    Raises ValueError unless there is one more value than boundaries (and
    the boundaries increase)."""
    if len(boundaries) != len(values) - 1:
        raise ValueError("The length of boundaries should be 1 less than the "
                         "length of values")
    return LearningRateSchedule(
        "piecewise_constant", float(values[0]), x,
        boundaries=[float(b) for b in boundaries],
        values=[float(v) for v in values])


def polynomial_decay(learning_rate, global_step, decay_steps,
                     end_learning_rate=0.0001, power=1.0, cycle=False,
                     name=None):
    """(learning_rate - end_learning_rate) * (1 - step / decay_steps) ^ power
    + end_learning_rate, with step capped at decay_steps, or with cycle the
    decay restarting at every multiple of decay_steps."""
    return LearningRateSchedule(
        "polynomial_decay", learning_rate, global_step,
        decay_steps=float(decay_steps),
        end_learning_rate=float(end_learning_rate), power=float(power),
        cycle=bool(cycle))


def cosine_decay(learning_rate, global_step, decay_steps, alpha=0.0,
                 name=None):
    """learning_rate * ((1 - alpha) * 0.5 * (1 + cos(pi * step /
    decay_steps)) + alpha), step capped at decay_steps."""
    return LearningRateSchedule(
        "cosine_decay", learning_rate, global_step,
        decay_steps=float(decay_steps), alpha=float(alpha))
