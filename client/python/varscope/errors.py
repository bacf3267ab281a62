"""Exceptions raised by Varscope, named and numbered as TensorFlow's tf.errors.

Every failed call on the server or the client raises an `OpError` subclass
chosen by its canonical (gRPC/absl) status code; `str(e)` and `e.message` are
the status message unchanged. `InvalidArgumentError`, `NotFoundError` and
`AlreadyExistsError` also derive from `ValueError`, because TensorFlow's
`get_variable` raises ValueError for reuse, shape and dtype errors: code that
catches ValueError keeps working, and code can catch the precise class.
"""

OK = 0
CANCELLED = 1
UNKNOWN = 2
INVALID_ARGUMENT = 3
DEADLINE_EXCEEDED = 4
NOT_FOUND = 5
ALREADY_EXISTS = 6
PERMISSION_DENIED = 7
RESOURCE_EXHAUSTED = 8
FAILED_PRECONDITION = 9
ABORTED = 10
OUT_OF_RANGE = 11
UNIMPLEMENTED = 12
INTERNAL = 13
UNAVAILABLE = 14
DATA_LOSS = 15
UNAUTHENTICATED = 16


class OpError(Exception):
    """A failed operation: `message` (str) and `error_code` (int, above).

    `node_def` and `op` exist for TensorFlow compatibility and are None for
    errors raised by Varscope.
    """

    def __init__(self, node_def, op, message, error_code):
        super().__init__(message)
        self._node_def = node_def
        self._op = op
        self._message = message
        self._error_code = error_code

    @property
    def message(self):
        return self._message

    @property
    def error_code(self):
        return self._error_code

    @property
    def node_def(self):
        return self._node_def

    @property
    def op(self):
        return self._op

    def __str__(self):
        return self._message

    def __reduce__(self):
        return type(self), (self._node_def, self._op, self._message,
                            self._error_code)


class _CodedError(OpError):
    """An OpError whose code is fixed by its class (`_CODE`)."""

    _CODE = UNKNOWN

    def __init__(self, node_def, op, message):
        super().__init__(node_def, op, message, self._CODE)

    def __reduce__(self):
        return type(self), (self._node_def, self._op, self._message)


class CancelledError(_CodedError):
    """The operation was cancelled."""
    _CODE = CANCELLED


class UnknownError(_CodedError):
    """An error of unknown kind (also used for codes outside the table)."""
    _CODE = UNKNOWN


class InvalidArgumentError(_CodedError, ValueError):
    """A bad argument: name, shape, dtype, initializer, partitioner..."""
    _CODE = INVALID_ARGUMENT


class DeadlineExceededError(_CodedError):
    """The call did not finish within the client's timeout."""
    _CODE = DEADLINE_EXCEEDED


class NotFoundError(_CodedError, ValueError):
    """The variable does not exist (e.g. get_variable with reuse=True)."""
    _CODE = NOT_FOUND


class AlreadyExistsError(_CodedError, ValueError):
    """The variable exists (e.g. get_variable with reuse=False)."""
    _CODE = ALREADY_EXISTS


class PermissionDeniedError(_CodedError):
    """The caller may not do this."""
    _CODE = PERMISSION_DENIED


class UnauthenticatedError(_CodedError):
    """The caller has no valid credentials."""
    _CODE = UNAUTHENTICATED


class ResourceExhaustedError(_CodedError):
    """A limit was exceeded, e.g. the server's largest variable size."""
    _CODE = RESOURCE_EXHAUSTED


class FailedPreconditionError(_CodedError):
    """The system is not in a state the operation requires."""
    _CODE = FAILED_PRECONDITION


class AbortedError(_CodedError):
    """The operation was aborted, e.g. by a failed version check."""
    _CODE = ABORTED


class OutOfRangeError(_CodedError):
    """A value was out of its valid range."""
    _CODE = OUT_OF_RANGE


class UnimplementedError(_CodedError):
    """The operation is not implemented."""
    _CODE = UNIMPLEMENTED


class InternalError(_CodedError):
    """An internal invariant was broken."""
    _CODE = INTERNAL


class UnavailableError(_CodedError):
    """The server could not be reached (retried where safe)."""
    _CODE = UNAVAILABLE


class DataLossError(_CodedError):
    """Unrecoverable data loss or corruption."""
    _CODE = DATA_LOSS


_CLASS_OF_CODE = {
    cls._CODE: cls
    for cls in (CancelledError, UnknownError, InvalidArgumentError,
                DeadlineExceededError, NotFoundError, AlreadyExistsError,
                PermissionDeniedError, UnauthenticatedError,
                ResourceExhaustedError, FailedPreconditionError, AbortedError,
                OutOfRangeError, UnimplementedError, InternalError,
                UnavailableError, DataLossError)
}


def exception_type_from_error_code(error_code):
    """The OpError subclass of a code (TensorFlow's function of this name)."""
    return _CLASS_OF_CODE[error_code]


def _from_status(code, message):
    """The exception for a non-OK status; the extension raises it."""
    return _CLASS_OF_CODE.get(code, UnknownError)(None, None, message)
