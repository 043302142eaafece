"""Client targets: one address, several, or a DNS name, as the gRPC channel wants them."""

import pytest

from digits.service.targets import channel_target


@pytest.mark.parametrize(("given", "target"), [
    ("127.0.0.1:50051", "127.0.0.1:50051"),
    ("dns:///digits.internal:50051", "dns:///digits.internal:50051"),
    ("127.0.0.1:5001, 127.0.0.2:5002", "ipv4:127.0.0.1:5001,127.0.0.2:5002"),
    ("localhost:5001,127.0.0.1:5002", "ipv4:127.0.0.1:5001,127.0.0.1:5002"),
    ("[::1]:5001,[::1]:5002", "ipv6:[::1]:5001,[::1]:5002"),
])
def test_targets(given: str, target: str) -> None:
    assert channel_target(given) == target


@pytest.mark.parametrize(("given", "problem"), [
    ("127.0.0.1:1,no-such-host.invalid:2", "cannot resolve 'no-such-host.invalid'"),
    ("127.0.0.1:1,127.0.0.1", "is not host:port"),
    ("127.0.0.1:1,[::1]:2", "mixes IPv4 and IPv6"),
])
def test_bad_targets_name_the_entry(given: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem.replace("[", r"\[")):
        channel_target(given)
