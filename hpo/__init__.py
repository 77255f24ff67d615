"""Hyperparameter optimisation: search spaces, generators, point leases, REST API and worker CLI."""

from __future__ import annotations
