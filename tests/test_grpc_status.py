"""Every domain error has its gRPC status code; anything else is a generic INTERNAL."""

import grpc
import pytest

from digits.service import errors
from digits.service.grpc_api.status import INTERNAL_MESSAGE, to_status


@pytest.mark.parametrize(("error", "code"), [
    (errors.InvalidInput("images: empty"), grpc.StatusCode.INVALID_ARGUMENT),
    (errors.ModelNotFound("no model named 'x'"), grpc.StatusCode.NOT_FOUND),
    (errors.ModelUnavailable("none loaded yet"), grpc.StatusCode.UNAVAILABLE),
    (errors.Overloaded("queue full"), grpc.StatusCode.RESOURCE_EXHAUSTED),
    (errors.DeadlineExpired("too late"), grpc.StatusCode.DEADLINE_EXCEEDED),
])
def test_domain_errors_keep_their_message(error: Exception, code: grpc.StatusCode) -> None:
    assert to_status(error) == (code, str(error))


def test_every_domain_error_has_a_code() -> None:
    kinds = errors.ServiceError.__subclasses__()
    assert len(kinds) == 5
    for kind in kinds:
        assert to_status(kind("x"))[0] != grpc.StatusCode.INTERNAL, kind


def test_anything_else_is_internal_and_leaks_nothing() -> None:
    assert to_status(KeyError("/secret/path")) == (grpc.StatusCode.INTERNAL, INTERNAL_MESSAGE)
    assert to_status(errors.ServiceError("base")) == (grpc.StatusCode.INTERNAL,
                                                      INTERNAL_MESSAGE)
