"""Metering TCP relays: the supervisor in the core, the child process and its relay."""
