"""The Azure Functions triggers: ``on_key_vault_event`` (Event Grid) and ``reconcile`` (timer).

A registry only: each trigger hands its input to ``rotation.entrypoints.invocation``, imported
on first use so that indexing the app imports nothing but ``azure.functions`` (cold start) and
reads no settings (a broken setting can never stop the host from indexing the app).
"""

from __future__ import annotations

import azure.functions as func

__all__ = ["bp", "on_key_vault_event", "reconcile"]

bp = func.Blueprint()  # type: ignore[no-untyped-call]


@bp.event_grid_trigger(arg_name="event")
def on_key_vault_event(event: func.EventGridEvent) -> None:
    """Handle one Key Vault event delivered by Event Grid (either schema)."""
    from rotation.entrypoints.invocation import handle_event  # noqa: PLC0415 - cold start

    handle_event(event)


@bp.timer_trigger(arg_name="timer", schedule="%ROTATION_RECONCILE_SCHEDULE%", run_on_startup=False)
def reconcile(timer: func.TimerRequest) -> None:
    """Sweep every bound certificate: catch missed versions, alert on near expiry."""
    from rotation.entrypoints.invocation import run_reconcile  # noqa: PLC0415 - cold start

    run_reconcile(past_due=timer.past_due)
