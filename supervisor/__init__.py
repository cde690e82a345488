"""docker-supervisor: a self-healing supervisor agent for Docker hosts.

The public Python API: ServiceManager (start, stop, restart, status and health of one
service), load_policies (a policies directory, validated) and Status.
"""

from .act.manager import ServiceManager
from .config.model import Policy
from .config.policy import load_policies, load_policy_file
from .docker.states import Status
from .errors import SupervisorError

__version__ = "0.1.0"

__all__ = [
    "Policy",
    "ServiceManager",
    "Status",
    "SupervisorError",
    "__version__",
    "load_policies",
    "load_policy_file",
]
