"""Apply: the APIM writes of one rollout (docs/architecture.md, "The rotation path", step 4).

One write per changed target (``put_certificate`` / ``update_backend_certificates`` /
``delete_certificate``), then, for a certificate entity, its verify read
(``rotation.rollout.verify``). Updates of existing targets are the port's compare-and-swaps
(``docs/architecture.md``, "Compare-and-swap"): the action carries what the plan saw. Every target
lands in the ``Outcome``; errors propagate to ``Rollout``, which re-plans after a 412 until its
last attempt.

``follow`` adds two: ``refresh_certificate`` (``refreshSecret``, then the verify read) and the
pin-back of a failed candidate (a compare-and-swap ``put_certificate`` to the last validated
version, verified against that version's thumbprint).
"""

from __future__ import annotations

from rotation.domain.actions import (
    Action,
    AlreadyCurrent,
    CreateEntity,
    MoveBackend,
    PinBack,
    PinEntity,
    RefreshEntity,
    RetireEntity,
    Superseded,
)
from rotation.domain.errors import PreconditionFailedError, RotationError
from rotation.domain.model import TargetResult
from rotation.ports import ApimGateway
from rotation.rollout.state import Outcome
from rotation.rollout.verify import expected_thumbprint, verify

__all__ = ["apply_actions", "write_action"]


def apply_actions(gateway: ApimGateway, outcome: Outcome, *, final: bool) -> None:
    """Write every planned action that changes something; record the others as they are.

    Raises:
        RotationError: a write or its verify read failed (``PreconditionFailedError`` on a 412;
            the failed target is recorded unless the rollout will re-plan).
    """
    for action in outcome.actions:
        if isinstance(action, AlreadyCurrent | Superseded):
            outcome.record(action)
        else:
            write_action(gateway, outcome, action, final=final)


def write_action(gateway: ApimGateway, outcome: Outcome, action: Action, *, final: bool) -> None:
    """One write (and, for a certificate entity, its verify read); the target is recorded.

    Raises:
        RotationError: the write or verify failed; the target is recorded ``failed`` unless it
            is a 412 and this is not the ``final`` attempt (the rollout re-plans then).
    """
    try:
        if isinstance(action, PinEntity | CreateEntity):
            gateway.put_certificate(
                action.service_id, action.certificate_id, secret_identifier=action.to_secret,
                identity_client_id=action.identity_client_id,
                expected_secret=action.from_secret if isinstance(action, PinEntity) else None,
            )  # fmt: skip
            verify(
                gateway, expected_thumbprint(outcome.report), action.service_id,
                action.certificate_id,
            )  # fmt: skip
        elif isinstance(action, RefreshEntity):
            gateway.refresh_certificate(action.service_id, action.certificate_id)
            verify(
                gateway, expected_thumbprint(outcome.report), action.service_id,
                action.certificate_id,
            )  # fmt: skip
        elif isinstance(action, PinBack):
            gateway.put_certificate(
                action.service_id, action.certificate_id, secret_identifier=action.to_secret,
                identity_client_id=action.identity_client_id, expected_secret=action.from_secret,
            )  # fmt: skip
            verify(gateway, action.thumbprint or "", action.service_id, action.certificate_id)
        elif isinstance(action, MoveBackend):
            gateway.update_backend_certificates(
                action.service_id,
                action.backend_id,
                expected_ids=action.from_ids,
                certificate_ids=action.to_ids,
            )
        elif isinstance(action, RetireEntity):
            gateway.delete_certificate(action.service_id, action.certificate_id, etag=action.etag)
    except RotationError as exc:
        if final or not isinstance(exc, PreconditionFailedError):
            outcome.record(action, TargetResult.FAILED)
        raise
    outcome.record(action)
