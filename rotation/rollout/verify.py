"""Verify: read a written certificate entity back (``docs/architecture.md``, "The rotation
path", step 5). APIM must present the candidate's thumbprint with ``lastStatus`` Success."""

from __future__ import annotations

from rotation.domain.errors import TransientDependencyError
from rotation.domain.model import ValidationReport
from rotation.ports import ApimGateway

__all__ = ["expected_thumbprint", "verify"]


def expected_thumbprint(report: ValidationReport | None) -> str:
    """The validated candidate's SHA-1 thumbprint (upper-case), "" when unknown."""
    return (report.leaf.thumbprint_sha1 if report and report.leaf else "").upper()


def verify(gateway: ApimGateway, expected: str, service_id: str, certificate_id: str) -> None:
    """One read of the entity: it must present ``expected`` (a SHA-1 thumbprint).

    Raises:
        TransientDependencyError: APIM does not present it (yet); retryable.
        RotationError: the read failed.
    """
    expected = expected.upper()
    entity = gateway.get_certificate(service_id, certificate_id)
    if entity.last_status_code == "Success" and (entity.thumbprint or "").upper() == expected:
        return
    raise TransientDependencyError(
        f"verify {certificate_id}: APIM presents {entity.thumbprint or 'nothing'} "
        f"(lastStatus {entity.last_status_code}), expected {expected}",
        service="apim", operation="verify",
    )  # fmt: skip
