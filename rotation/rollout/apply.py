"""Apply and verify: the APIM writes of one rollout, each guarded before and read back after.

The write half of ``rotation.rollout.Rollout`` (ARCHITECTURE §2 steps 6-7): one write per
changed target (``put_certificate`` / ``update_backend_certificates`` / ``delete_certificate``)
and one verify read per written certificate entity (APIM must present the candidate's thumbprint,
``lastStatus`` Success). Updates of existing targets are the gateway's compare-and-swaps: the
core passes what the plan saw (``PinEntity.from_secret``, ``MoveBackend.from_ids``) and the
gateway reads the target, compares and writes with ``If-Match`` (ARM lists carry no ETag), so no
ETag passes through here except a retirement's listed one. Every target lands in the
``Outcome``; errors propagate to the rollout, which re-reads and re-plans on a 412 (or a target
that moved since it was listed) until its last attempt.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rotation.domain.actions import (
    Action,
    AlreadyCurrent,
    CreateEntity,
    MoveBackend,
    PinEntity,
    RetireEntity,
    Superseded,
)
from rotation.domain.errors import PreconditionFailedError, RotationError, TransientDependencyError
from rotation.ports import ApimGateway

if TYPE_CHECKING:
    from rotation.domain.model import ValidationReport
    from rotation.rollout.converge import Outcome

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
            _verify(gateway, outcome.report, action.service_id, action.certificate_id)
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
            outcome.record(action, "failed")
        raise
    outcome.record(action)


def _verify(
    gateway: ApimGateway, report: ValidationReport | None, service_id: str, certificate_id: str
) -> None:
    """Read the entity back: APIM must present the candidate's thumbprint, lastStatus Success."""
    expected = (report.leaf.thumbprint_sha1 if report and report.leaf else "").upper()
    entity = gateway.get_certificate(service_id, certificate_id)
    if entity.last_status_code == "Success" and (entity.thumbprint or "").upper() == expected:
        return
    raise TransientDependencyError(
        f"verify {certificate_id}: APIM presents {entity.thumbprint or 'nothing'} "
        f"(lastStatus {entity.last_status_code}), expected {expected}",
        service="apim", operation="verify",
    )  # fmt: skip
