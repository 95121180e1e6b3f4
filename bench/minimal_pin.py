"""The minimal hand-written pin rotation ``bench_scale.py`` compares ``certrotate replay`` with.

Run: ``python bench/minimal_pin.py EVENT_FILE [--start-only]`` with the devstack's ``env``
(``ROTATION_VAULTS``, ``ROTATION_APIM_SERVICES``, ``ROTATION_ARM_ENDPOINT``,
``ROTATION_DEVSTACK_CA_BUNDLE``, ``ROTATION_DEVSTACK_TOKEN``) in the environment.

What a person would script for the useful work of a pin rotation, with the same SDKs: read the
event's secret version (Key Vault), list the certificate entities of each service, PUT every
entity that names the certificate onto the versioned secret. No version list, no validation,
no ETags, no verify read, no audit. Prints ``{"in_process_ms", "updated"}``: the time after the
imports (client construction included). ``--start-only`` stops after the imports and clients.
"""

from __future__ import annotations

import json
import os
import sys
import time

from azure.core.credentials import AccessToken
from azure.keyvault.secrets import SecretClient
from azure.mgmt.apimanagement import ApiManagementClient
from azure.mgmt.apimanagement.models import (
    CertificateCreateOrUpdateParameters,
    KeyVaultContractCreateProperties,
)


class Token:
    """A bearer token credential (the devstack accepts its own token)."""

    def __init__(self, token: str) -> None:
        self.token = token

    def get_token(self, *_scopes: str, **_kwargs: object) -> AccessToken:
        return AccessToken(self.token, int(time.time()) + 3600)


def main() -> None:
    start = time.perf_counter()
    event = json.loads(open(sys.argv[1]).read())  # noqa: SIM115, PTH123 - a script
    data = (event[0] if isinstance(event, list) else event)["data"]
    name, version = data["ObjectName"], data["Version"]
    vault = data["Id"].split("/certificates/")[0]
    credential = Token(os.environ["ROTATION_DEVSTACK_TOKEN"])
    verify = os.environ["ROTATION_DEVSTACK_CA_BUNDLE"]
    secrets = SecretClient(
        vault, credential, connection_verify=verify, verify_challenge_resource=False
    )
    services = os.environ["ROTATION_APIM_SERVICES"].split(",")
    subscription = services[0].split("/")[2]
    apim = ApiManagementClient(
        credential, subscription, base_url=os.environ["ROTATION_ARM_ENDPOINT"],
        connection_verify=verify,
    )  # fmt: skip
    updated = 0
    if "--start-only" not in sys.argv:
        secrets.get_secret(name, version)
        target = f"{vault}/secrets/{name}/{version}"
        prefix = f"{vault}/secrets/{name}/".lower()
        for service in services:
            parts = service.split("/")
            rg, svc = parts[4], parts[8]
            for entity in apim.certificate.list_by_service(rg, svc):
                current = (entity.key_vault.secret_identifier or "") if entity.key_vault else ""
                if current.lower().startswith(prefix) and current != target:
                    params = CertificateCreateOrUpdateParameters(
                        key_vault=KeyVaultContractCreateProperties(secret_identifier=target)
                    )
                    apim.certificate.create_or_update(rg, svc, entity.name or "", params)
                    updated += 1
    elapsed = (time.perf_counter() - start) * 1000
    print(json.dumps({"in_process_ms": round(elapsed, 3), "updated": updated}))


if __name__ == "__main__":
    main()
