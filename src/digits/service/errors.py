"""Domain errors of the service, each carrying the gRPC status code it maps to.

Servicers raise these; one place (the server's error handling) turns them into status
codes. Anything else is a bug: it becomes INTERNAL with a generic message and a logged
traceback.
"""

import grpc


class ServiceError(Exception):
    """Base of the errors a client is meant to see; ``code`` is the gRPC status."""

    code: grpc.StatusCode = grpc.StatusCode.UNKNOWN


class InvalidInput(ServiceError):
    """The request is malformed; the message names the field and the fix."""

    code = grpc.StatusCode.INVALID_ARGUMENT


class ModelNotFound(ServiceError):
    """No such model or version; the message lists what is available."""

    code = grpc.StatusCode.NOT_FOUND


class ModelUnavailable(ServiceError):
    """The model exists but no version is loaded yet (or the server is shutting down)."""

    code = grpc.StatusCode.UNAVAILABLE


class Overloaded(ServiceError):
    """The batching queue is full; the client should back off and retry."""

    code = grpc.StatusCode.RESOURCE_EXHAUSTED


class DeadlineExpired(ServiceError):
    """The request's deadline passed before its batch ran; it was dropped, not computed."""

    code = grpc.StatusCode.DEADLINE_EXCEEDED


INTERNAL_MESSAGE = "internal error; the server logged the details"


def to_status(error: Exception) -> tuple[grpc.StatusCode, str]:
    """The status code and message a client sees for ``error``.

    Domain errors keep their message; anything else is a bug, so the client gets a
    generic INTERNAL (the caller logs the traceback) and no internals leak out.
    """
    if isinstance(error, ServiceError):
        return error.code, str(error)
    return grpc.StatusCode.INTERNAL, INTERNAL_MESSAGE
