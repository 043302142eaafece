"""Domain errors to gRPC status codes: the one map for the gRPC front ends.

Anything that is not a domain error is a bug: it becomes INTERNAL with a generic
message (the caller logs the traceback), so no internals leak out.
"""

import grpc

from digits.service import errors

CODES: dict[type[errors.ServiceError], grpc.StatusCode] = {
    errors.InvalidInput: grpc.StatusCode.INVALID_ARGUMENT,
    errors.ModelNotFound: grpc.StatusCode.NOT_FOUND,
    errors.ModelUnavailable: grpc.StatusCode.UNAVAILABLE,
    errors.Overloaded: grpc.StatusCode.RESOURCE_EXHAUSTED,
    errors.DeadlineExpired: grpc.StatusCode.DEADLINE_EXCEEDED,
}
INTERNAL_MESSAGE = "internal error; the server logged the details"


def to_status(error: Exception) -> tuple[grpc.StatusCode, str]:
    """The status code and message a client sees for ``error``."""
    for kind in type(error).__mro__:
        code = CODES.get(kind)
        if code is not None:
            return code, str(error)
    if isinstance(error, NotImplementedError):  # a generated servicer's method we leave out
        return grpc.StatusCode.UNIMPLEMENTED, "this method is not served by digits"
    return grpc.StatusCode.INTERNAL, INTERNAL_MESSAGE
