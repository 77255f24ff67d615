"""Tooling around the service, outside the Django apps: the bootstrap entry point (set-up, tests,
demo, a supervised serve), the STOMP broker installers and the reference message consumer."""
