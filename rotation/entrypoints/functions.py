"""The Azure Functions triggers: ``on_key_vault_event`` (Event Grid) and ``reconcile`` (timer).

A registry only: each trigger hands its input to ``rotation.entrypoints.invocation``, imported
on first use so that indexing the app imports nothing but ``azure.functions`` (cold start) and
reads no settings (a broken setting can never stop the host from indexing the app). The host's
``context`` carries the invocation's W3C trace context, so what the invocation logs correlates
with it in App Insights (docs/operations.md).
"""

from __future__ import annotations

import azure.functions as func

__all__ = ["bp", "on_key_vault_event", "reconcile"]

bp = func.Blueprint()  # type: ignore[no-untyped-call]


@bp.event_grid_trigger(arg_name="event")
def on_key_vault_event(
    event: func.EventGridEvent,
    context: func.Context = None,  # type: ignore[assignment] # the worker requires exactly Context
) -> None:
    """Handle one Key Vault event delivered by Event Grid (either schema)."""
    from rotation.entrypoints.invocation import handle_event, trace_context  # noqa: PLC0415

    handle_event(event, trace=trace_context(context))


@bp.timer_trigger(arg_name="timer", schedule="%ROTATION_RECONCILE_SCHEDULE%", run_on_startup=False)
def reconcile(
    timer: func.TimerRequest,
    context: func.Context = None,  # type: ignore[assignment] # the worker requires exactly Context
) -> None:
    """Sweep every bound certificate: catch missed versions, alert on near expiry."""
    from rotation.entrypoints.invocation import run_reconcile, trace_context  # noqa: PLC0415

    run_reconcile(past_due=timer.past_due, trace=trace_context(context))
