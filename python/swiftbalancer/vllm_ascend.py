"""vllm-ascend's dynamic-EPLB policy factory, pointed at SwiftBalancer.

vllm-ascend builds its policy with ``PolicyFactory.generate_policy(policy_type)``, which looks
the class up by name in ``vllm_ascend.eplb.core.policy.policy_factory`` at each call and
constructs it with no arguments. ``install(policy_type=2)`` puts ``swiftbalancer.VllmAscendPolicy``
under the name the factory uses for that type (0 ``RandomLoadBalance``, 1 ``DefaultEplb``,
2 ``SwiftBalanceEplb``, 3 ``FlashLB``), so ``--additional-config`` picking that type gets ours;
it returns the name replaced. The policy then takes its ranks per node from
``SWIFTBALANCER_RANKS_PER_NODE``, else the NPU count, else one node (``VllmAscendPolicy``).
``register()`` does the same for type 2 only when ``SWIFTBALANCER_VLLM_ASCEND_EPLB`` is 1, true,
yes or on, and returns None otherwise.
"""

import importlib
import os

from . import VllmAscendPolicy

__all__ = ["FACTORY_MODULE", "POLICY_NAMES", "ENV_SWITCH", "install", "register"]

FACTORY_MODULE = "vllm_ascend.eplb.core.policy.policy_factory"
POLICY_NAMES = {0: "RandomLoadBalance", 1: "DefaultEplb", 2: "SwiftBalanceEplb", 3: "FlashLB"}
ENV_SWITCH = "SWIFTBALANCER_VLLM_ASCEND_EPLB"


def install(policy_type=2, policy_class=VllmAscendPolicy):
    """Makes vllm-ascend's factory build policy_class for policy_type; returns the name."""
    if policy_type not in POLICY_NAMES:
        raise ValueError("policy_type must be one of %s, got %r" % (sorted(POLICY_NAMES),
                                                                   policy_type))
    module = importlib.import_module(FACTORY_MODULE)
    name = POLICY_NAMES[policy_type]
    if not hasattr(module, name):
        raise RuntimeError("%s has no %s: this vllm-ascend builds its policies another way"
                           % (FACTORY_MODULE, name))
    setattr(module, name, policy_class)
    return "%s.%s" % (FACTORY_MODULE, name)


def register():
    if os.environ.get(ENV_SWITCH, "").strip().lower() not in ("1", "true", "yes", "on"):
        return None
    return install(2)
