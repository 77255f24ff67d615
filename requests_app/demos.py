"""The demo steps `run_demo` runs, registered by the apps that own them.

Each work-type app registers its own step in its ``AppConfig.ready`` (its management command and
arguments), so the core names no app's command and a new work type joins the demo by itself.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DemoStep:
    """One part of the demo: a management command of the registering app, run with ``--owner``."""

    name: str  # what `run_demo --skip NAME` leaves out
    title: str
    command: str
    arguments: tuple[str, ...] = ()
    order: int = 100  # smaller runs first


_STEPS: dict[str, DemoStep] = {}


def demo_step_register(step: DemoStep) -> None:
    """Add (or replace, by name) a demo step; apps call this from ``AppConfig.ready``."""
    _STEPS[step.name] = step


def demo_steps() -> list[DemoStep]:
    """The registered steps in the order they run."""
    return sorted(_STEPS.values(), key=lambda step: (step.order, step.name))
