"""The APIM adapter reads a backend's ``tls`` properties (what the canary's server checks follow)."""

from __future__ import annotations

from rotation.domain.canary import CanaryTarget


def test_tls_properties_are_read_and_default_to_true(devstack, apim_gateway):
    service = devstack.apim_services[0]
    service_id = devstack.service_id(service)
    devstack.put_backend(service, "strict", url="https://strict.test/api", certificate_ids=["/a"])
    devstack.put_backend(
        service, "lenient", url="https://lenient.test/", certificate_ids=["/a"],
        tls={"validateCertificateChain": False, "validateCertificateName": False},
    )  # fmt: skip
    devstack.put_backend(
        service, "named-only", url="https://n.test/", certificate_ids=["/a"],
        tls={"validateCertificateChain": False},
    )  # fmt: skip

    listed = {b.backend_id: b for b in apim_gateway.list_backends(service_id)}

    flags = {
        name: (b.validate_certificate_chain, b.validate_certificate_name)
        for name, b in listed.items()
        if name in {"strict", "lenient", "named-only"}
    }
    assert flags == {
        "strict": (True, True),
        "lenient": (False, False),
        "named-only": (False, True),
    }
    assert CanaryTarget.for_backend(listed["lenient"]) == CanaryTarget(
        service=service, backend="lenient", url="https://lenient.test/",
        validate_chain=False, validate_name=False,
    )  # fmt: skip
