"""featd's errors as Python exceptions: one class per gRPC status, each carrying the server's
message (``str(e)``), the status name (``e.code``) and, for a call, the method (``e.method``)."""


class FeatdError(Exception):
    """Any error featd answered (or the transport raised)."""

    code = "UNKNOWN"

    def __init__(self, message, method=""):
        super().__init__(message)
        self.message = message
        self.method = method


class InvalidArgument(FeatdError):
    code = "INVALID_ARGUMENT"


class NotFound(FeatdError):
    code = "NOT_FOUND"


class AlreadyExists(FeatdError):
    code = "ALREADY_EXISTS"


class PermissionDenied(FeatdError):
    code = "PERMISSION_DENIED"


class Unauthenticated(FeatdError):
    code = "UNAUTHENTICATED"


class FailedPrecondition(FeatdError):
    code = "FAILED_PRECONDITION"


class ResourceExhausted(FeatdError):
    code = "RESOURCE_EXHAUSTED"


class Unavailable(FeatdError):
    code = "UNAVAILABLE"


class DeadlineExceeded(FeatdError):
    code = "DEADLINE_EXCEEDED"


class Internal(FeatdError):
    code = "INTERNAL"


class Unimplemented(FeatdError):
    code = "UNIMPLEMENTED"


class DataLoss(FeatdError):
    code = "DATA_LOSS"


class TrainingFailed(FeatdError):
    """A retrain or import run ended in failure (the run's error is the message)."""

    code = "TRAINING_FAILED"


_BY_CODE = {c.code: c for c in (InvalidArgument, NotFound, AlreadyExists, PermissionDenied, Unauthenticated,
                                FailedPrecondition, ResourceExhausted, Unavailable, DeadlineExceeded, Internal,
                                Unimplemented, DataLoss)}


def from_rpc_error(e, method=""):
    """The FeatdError for a grpc.RpcError."""
    name = e.code().name if hasattr(e, "code") and e.code() is not None else "UNKNOWN"
    cls = _BY_CODE.get(name, FeatdError)
    err = cls(e.details() or name, method)
    if cls is FeatdError:
        err.code = name
    return err
