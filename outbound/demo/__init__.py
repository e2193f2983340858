"""The `outbound demo` scenario: shops, customers and their events, built deterministically."""

from outbound.demo.scenario import Scenario, build_scenario
from outbound.demo.shops import TenantSpec

__all__ = ["Scenario", "TenantSpec", "build_scenario"]
