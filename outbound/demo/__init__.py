"""The `outbound demo` scenario: shops, customers and their events, built deterministically."""

from outbound.demo.scenario import Scenario, TenantSpec, build_scenario

__all__ = ["Scenario", "TenantSpec", "build_scenario"]
