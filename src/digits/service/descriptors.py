"""Open file descriptors: enough for the clients we accept and a reserve for the rest.

Every connection holds a descriptor; so do the model files a load reads and the models
directory a scan lists. At start-up the soft limit is raised to the hard one (which a
process may do unprivileged), and if it still cannot hold ``max_connections`` per port
plus a reserve, fewer connections are accepted, so a flood of idle clients can never
leave the volume watcher without descriptors.
"""

import logging
import resource

log = logging.getLogger(__name__)

RESERVE = 256  # model files, the models directory, the metrics server, logs
PORTS = 2  # gRPC and HTTP each accept max_connections


def raise_soft_limit() -> int:
    """Raise the soft open-files limit to the hard one; returns the soft limit now."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError) as error:
            log.warning("cannot raise the open-files limit from %d to %d: %s", soft, hard,
                        error)
    return soft


def connections_within(max_connections: int, limit: int) -> int:
    """``max_connections`` per port, lowered to what ``limit`` descriptors can hold."""
    fitting = max(1, (limit - RESERVE) // PORTS)
    if max_connections > fitting:
        log.warning("the open-files limit of %d holds %d connections per port beside a "
                    "reserve of %d, not --max-connections %d: accepting %d (raise the "
                    "limit, e.g. ulimit -n, to accept more)", limit, fitting, RESERVE,
                    max_connections, fitting)
        return fitting
    return max_connections
