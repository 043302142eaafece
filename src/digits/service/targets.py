"""Client targets that spread calls over replicas: several addresses, or a DNS name.

gRPC keeps one long-lived HTTP/2 connection per target, so a plain ``host:port`` behind
an L4 balancer sticks to one replica. Given several ``host:port`` (comma-separated) or a
``dns:///name:port`` whose name has one address per replica, the channel connects to
every address and sends each call to the next with the ``round_robin`` policy; the
server's maximum connection age makes long-lived clients look the name up again, so
they find replicas added later.
"""

import ipaddress
import json
import socket

# Round-robin over every address the target resolves to (gRPC's default, pick_first,
# would send everything to the first).
ROUND_ROBIN = json.dumps({"loadBalancingConfig": [{"round_robin": {}}]})


def channel_target(text: str) -> str:
    """The gRPC target for ``text``: as given for one address or a URI (``dns:///...``),
    or an ``ipv4:``/``ipv6:`` list of every address of ``host:port,host:port,...``.

    Raises ValueError naming a malformed or unresolvable entry.
    """
    text = text.strip()
    if "," not in text:
        return text
    addresses = [_numeric(entry.strip()) for entry in text.split(",") if entry.strip()]
    families = {family for family, _ in addresses}
    if len(families) > 1:
        raise ValueError(f"{text!r} mixes IPv4 and IPv6 addresses; list one family only")
    family = families.pop()
    return f"{family}:" + ",".join(address for _, address in addresses)


def _numeric(entry: str) -> tuple[str, str]:
    """('ipv4' or 'ipv6', 'address:port') of one ``host:port`` entry."""
    host, separator, port = entry.rpartition(":")
    host = host.strip("[]")
    if not separator or not host or not port.isdigit():
        raise ValueError(f"{entry!r} is not host:port; list targets as host:port,host:port")
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        try:
            found = socket.getaddrinfo(host, int(port), type=socket.SOCK_STREAM)
        except socket.gaierror as error:
            raise ValueError(f"{entry!r}: cannot resolve {host!r} ({error.strerror})") from None
        # IPv4 first: a name like localhost may list ::1 before 127.0.0.1.
        found.sort(key=lambda entry: entry[0] != socket.AF_INET)
        address = ipaddress.ip_address(found[0][4][0])
    if address.version == 6:
        return "ipv6", f"[{address}]:{port}"
    return "ipv4", f"{address}:{port}"
