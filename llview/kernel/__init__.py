"""Kernel profiles: the monitored kernel's headers, config, vmlinuz and modules."""

from llview.kernel.profile import Profile, fetch, load_profile

__all__ = ["Profile", "fetch", "load_profile"]
