"""Azure clouds: what follows from ``ROTATION_ARM_ENDPOINT`` (pure, no I/O).

The ARM endpoint names the cloud. From it follow the scope of the ARM token
(``<origin>/.default``), the host suffixes a Key Vault may have, and the storage endpoint
suffix that completes ``<CONNECTION>__accountName``:

=====================================  ==============================  ========================
ARM endpoint                           Key Vault hosts                 storage suffix
=====================================  ==============================  ========================
``https://management.azure.com``       ``*.vault.azure.net``           ``core.windows.net``
``https://management.usgovcloudapi.net``  ``*.vault.usgovcloudapi.net``  ``core.usgovcloudapi.net``
``https://management.chinacloudapi.cn``   ``*.vault.azure.cn``           ``core.chinacloudapi.cn``
=====================================  ==============================  ========================

Any other endpoint (the local devstack, an Azure Stack hub) is a *custom* cloud: its token
scope is its own origin plus ``/.default``, and it places no rule on vault hosts (the vaults are
whatever ``ROTATION_VAULTS`` lists). In a known cloud, ``ROTATION_VAULTS`` may not name a vault
of another known cloud (``Cloud.foreign_vault_host``): its tokens would be for the wrong cloud.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

__all__ = [
    "ALL_VAULT_SUFFIXES",
    "AZURE_CHINA",
    "AZURE_PUBLIC",
    "AZURE_US_GOVERNMENT",
    "KNOWN_CLOUDS",
    "Cloud",
    "cloud_for_arm_endpoint",
]


@dataclass(frozen=True, slots=True)
class Cloud:
    """One Azure cloud as the app sees it."""

    name: str
    arm_origin: str
    vault_suffixes: tuple[str, ...]  # empty: any https host (custom clouds)
    storage_suffix: str

    @property
    def arm_scope(self) -> str:
        """The scope of an ARM token for this cloud (``<origin>/.default``)."""
        return f"{self.arm_origin}/.default"

    def vault_host_allowed(self, host: str) -> bool:
        """True when ``host`` (lower-case, no port) may be a Key Vault of this cloud."""
        if not self.vault_suffixes:
            return True
        return any(
            host.endswith(f".{suffix}") and host.count(".") == suffix.count(".") + 1
            for suffix in self.vault_suffixes
        )

    def foreign_vault_host(self, host: str) -> bool:
        """True when ``host`` is a Key Vault host of another known cloud (a vault this cloud's
        ARM endpoint and tokens cannot serve). Hosts of no known cloud (a local stand-in) are
        not foreign: ``ROTATION_VAULTS`` names them explicitly."""
        if self.vault_host_allowed(host):
            return False
        return any(
            other.vault_host_allowed(host) for other in KNOWN_CLOUDS if other.name != self.name
        )


AZURE_PUBLIC = Cloud(
    "AzureCloud", "https://management.azure.com", ("vault.azure.net",), "core.windows.net"
)
AZURE_US_GOVERNMENT = Cloud(
    "AzureUSGovernment",
    "https://management.usgovcloudapi.net",
    ("vault.usgovcloudapi.net",),
    "core.usgovcloudapi.net",
)
AZURE_CHINA = Cloud(
    "AzureChinaCloud",
    "https://management.chinacloudapi.cn",
    ("vault.azure.cn",),
    "core.chinacloudapi.cn",
)
KNOWN_CLOUDS = (AZURE_PUBLIC, AZURE_US_GOVERNMENT, AZURE_CHINA)
ALL_VAULT_SUFFIXES = tuple(s for cloud in KNOWN_CLOUDS for s in cloud.vault_suffixes)


def cloud_for_arm_endpoint(endpoint: str) -> Cloud:
    """The cloud whose ARM endpoint is ``endpoint`` (an https URL; path and case ignored).

    Raises:
        ValueError: ``endpoint`` is not an https URL with a host.
    """
    try:
        parts = urlsplit(endpoint.strip())
        port = parts.port
    except ValueError:
        raise ValueError(f"{endpoint!r} is not a URL") from None
    if parts.scheme.lower() != "https" or not parts.hostname:
        raise ValueError(f"{endpoint!r} must be an https URL with a host")
    origin = f"https://{parts.hostname.lower()}" + (f":{port}" if port and port != 443 else "")  # noqa: PLR2004
    for cloud in KNOWN_CLOUDS:
        if origin == cloud.arm_origin:
            return cloud
    return Cloud("custom", origin, (), AZURE_PUBLIC.storage_suffix)
