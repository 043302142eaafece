"""Domain errors of the service: what went wrong, in words a client can act on.

The core raises these; each transport maps them to its own status codes in one place
(``grpc_api.status`` for gRPC). Anything else that escapes is a bug: the transport
answers with a generic internal error and logs the traceback.
"""


class ServiceError(Exception):
    """Base of the errors a client is meant to see; the message names the fix."""


class InvalidInput(ServiceError):
    """The request is malformed; the message names the field and the fix."""


class ModelNotFound(ServiceError):
    """No such model or version; the message lists what is available."""


class ModelUnavailable(ServiceError):
    """The model exists but no version is loaded yet (or the server is shutting down)."""


class Overloaded(ServiceError):
    """The batching queue is full; the client should back off and retry."""


class DeadlineExpired(ServiceError):
    """The request's deadline passed before its batch ran; it was dropped, not computed."""


def echo(text: str, limit: int = 64) -> str:
    """A client-supplied string fit to quote in a message: escaped, at most ``limit``
    characters of it, and its length when cut (a message must never grow with the input)."""
    quoted = repr(text[:limit])
    return quoted if len(text) <= limit else f"{quoted}... ({len(text):,} characters)"
