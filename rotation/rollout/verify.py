"""Verify: read a written certificate entity back (``docs/architecture.md``, "The rotation
path", step 5). APIM must present the candidate's thumbprint with ``lastStatus`` Success."""

from __future__ import annotations

from rotation.domain.errors import TransientDependencyError
from rotation.domain.model import ValidationReport
from rotation.ports import ApimGateway

__all__ = ["verify"]


def verify(
    gateway: ApimGateway, report: ValidationReport | None, service_id: str, certificate_id: str
) -> None:
    """One read of the entity.

    Raises:
        TransientDependencyError: APIM does not present the candidate (yet); retryable.
        RotationError: the read failed.
    """
    expected = (report.leaf.thumbprint_sha1 if report and report.leaf else "").upper()
    entity = gateway.get_certificate(service_id, certificate_id)
    if entity.last_status_code == "Success" and (entity.thumbprint or "").upper() == expected:
        return
    raise TransientDependencyError(
        f"verify {certificate_id}: APIM presents {entity.thumbprint or 'nothing'} "
        f"(lastStatus {entity.last_status_code}), expected {expected}",
        service="apim", operation="verify",
    )  # fmt: skip
