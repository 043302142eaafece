"""Domain errors to HTTP statuses: the one map for the HTTP front end.

Each error also keeps its canonical code name (the gRPC one: INVALID_ARGUMENT, ...), the
``code`` label of the request metrics, so one error-ratio rule covers every transport.
Anything that is not a domain error is a bug: 500 with a generic message, the traceback
in the log.
"""

from aiohttp import web

from digits.service import errors

STATUSES: dict[type[errors.ServiceError], tuple[int, str]] = {
    errors.InvalidInput: (400, "INVALID_ARGUMENT"),
    errors.ModelNotFound: (404, "NOT_FOUND"),
    errors.ModelUnavailable: (503, "UNAVAILABLE"),
    errors.Overloaded: (429, "RESOURCE_EXHAUSTED"),
    errors.DeadlineExpired: (504, "DEADLINE_EXCEEDED"),
}
# The framework's own refusals (unknown route, wrong method, body too large, ...).
HTTP_CODES = {400: "INVALID_ARGUMENT", 404: "NOT_FOUND", 405: "UNIMPLEMENTED",
              413: "RESOURCE_EXHAUSTED", 415: "INVALID_ARGUMENT", 503: "UNAVAILABLE"}
INTERNAL = (500, "INTERNAL")
INTERNAL_MESSAGE = "internal error; the server logged the details"


def to_status(error: Exception) -> tuple[int, str, str]:
    """(HTTP status, canonical code, message) a client sees for ``error``."""
    for kind in type(error).__mro__:
        status = STATUSES.get(kind)
        if status is not None:
            return (*status, str(error))
    if isinstance(error, web.HTTPException):
        return error.status, HTTP_CODES.get(error.status, "UNKNOWN"), error.reason
    return (*INTERNAL, INTERNAL_MESSAGE)
