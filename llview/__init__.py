"""llview: compile kernel-header C into IDS binaries served by an agent."""

__version__ = "0.1.0"
