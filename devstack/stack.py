"""``Devstack``: start and stop both stand-ins, seed them directly, and describe them to clients.

    with Devstack.start() as stack:
        client = CertificateClient(stack.vault_url, StaticTokenCredential(stack.token),
                                   connection_verify=str(stack.ca_bundle),
                                   verify_challenge_resource=False)

Seeding helpers (``import_certificate``, ``put_apim_certificate``, ``put_backend``, ``put_api``,
``put_operation``, ``put_product``, ``put_policy``) write the state directly (no HTTP) and
compute what the HTTP paths compute, so they are fast enough for thousands of entities.
"""

from __future__ import annotations

import json
import secrets
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from devstack import apim, arm_policies
from devstack.admin import AdminApi
from devstack.arm import ArmApp
from devstack.arm_entities import Route
from devstack.bundles import PKCS12, parse_bundle
from devstack.eventgrid import EventGridTopic, Subscription
from devstack.faults import FaultInjector, RequestLog
from devstack.keyvault import KeyVaultApp
from devstack.server import StandInServer
from devstack.state import DevstackState, Entity
from devstack.tls import mint_server_tls

__all__ = ["INBOUND_CERTIFICATE", "TRUST_ANCHORS_FILE", "Devstack", "StackRequestLog"]

SUBSCRIPTION_ID = "00000000-0000-4000-8000-00000000d5ac"
RESOURCE_GROUP = "rg-devstack"
TENANT_ID = "00000000-0000-4000-8000-000000007e57"
VAULT_NAME = "kv-devstack"
TRUST_ANCHORS_FILE = "trust-anchors.pem"  # in the state dir; written by devstack.seed
INBOUND_CERTIFICATE = "partner-caller"  # the scene's inbound client certificate (devstack.seed)


@dataclass(frozen=True, slots=True)
class StackRequestLog:
    """The request logs of both servers."""

    kv: RequestLog
    arm: RequestLog

    def clear(self) -> None:
        """Forget every logged request on both servers."""
        self.kv.clear()
        self.arm.clear()


class Devstack:
    """A running pair of stand-ins (Key Vault and ARM/APIM) on 127.0.0.1."""

    def __init__(
        self,
        state_dir: Path | None,
        *,
        ephemeral: bool,
        port_kv: int,
        port_arm: int,
        services: tuple[str, ...],
        seed: int = 0,
    ) -> None:
        self.state_dir: Path = (
            state_dir.resolve() if state_dir else Path(tempfile.mkdtemp(prefix="devstack-"))
        )
        self._tempdir = None if state_dir else self.state_dir
        self.state = DevstackState(None if ephemeral else self.state_dir)
        self.token = secrets.token_urlsafe(32)
        self.canary_mode = "off"  # ROTATION_CANARY in env(); the demo's nginx scene sets it
        self.canary_server_ca: Path | None = None  # ROTATION_CANARY_SERVER_CA in env() when set
        self.subscription_id, self.resource_group = SUBSCRIPTION_ID, RESOURCE_GROUP
        self.tenant_id, self.vault_name = TENANT_ID, VAULT_NAME
        tls = mint_server_tls(self.state_dir)
        self.tls, self.ca_bundle = tls, tls.ca_pem
        self.faults_kv, self.faults_arm = FaultInjector(seed), FaultInjector(seed)
        self.request_log = StackRequestLog(RequestLog(), RequestLog())
        for name in services:
            self.state.ensure_service(name)
        self.apim_services = tuple(svc.name for svc in self.state.services.values())
        admin = AdminApi(
            {
                "arm": (self.faults_arm, self.request_log.arm),
                "kv": (self.faults_kv, self.request_log.kv),
            }
        )
        kv_app = KeyVaultApp(self.state, tenant_id=self.tenant_id)
        self._arm_app = ArmApp(
            self.state,
            token=self.token,
            subscription_id=self.subscription_id,
            resource_group=self.resource_group,
            faults=self.faults_arm,
            admin=admin,
        )
        context = tls.server_context()
        self._kv = StandInServer(
            kv_app, context, port=port_kv, faults=self.faults_kv, log=self.request_log.kv
        )
        try:
            self._arm = StandInServer(
                self._arm_app,
                context,
                port=port_arm,
                faults=self.faults_arm,
                log=self.request_log.arm,
            )
        except OSError:
            self._kv.close()
            raise

    @classmethod
    @contextmanager
    def start(
        cls,
        state_dir: Path | None = None,
        *,
        ephemeral: bool = True,
        port_kv: int = 0,
        port_arm: int = 0,
        services: tuple[str, ...] = ("apim-devstack-1", "apim-devstack-2"),
        seed: int = 0,
    ) -> Iterator[Devstack]:
        """Start both servers; stop them (and save state unless ephemeral) on exit.

        Raises:
            OSError: a requested port is in use.
        """
        stack = cls(
            state_dir,
            ephemeral=ephemeral,
            port_kv=port_kv,
            port_arm=port_arm,
            services=services,
            seed=seed,
        )
        stack._kv.start()
        stack._arm.start()
        try:
            yield stack
        finally:
            stack.close()

    def close(self) -> None:
        """Stop both servers, save state, and remove a temporary state directory."""
        self._kv.stop()
        self._arm.stop()
        self.state.close()
        if self._tempdir is not None:
            shutil.rmtree(self._tempdir, ignore_errors=True)

    # --- description ----------------------------------------------------------------------

    @property
    def vault_url(self) -> str:
        """``https://127.0.0.1:PORT`` of the Key Vault stand-in."""
        return self._kv.url

    @property
    def arm_endpoint(self) -> str:
        """``https://127.0.0.1:PORT`` of the ARM stand-in."""
        return self._arm.url

    def eventgrid_topic(
        self, subscription: Subscription, name: str = "certrotate-replay", **kwargs: Any
    ) -> AbstractContextManager[EventGridTopic]:
        """Start an Event Grid topic stand-in (``devstack.eventgrid``) on this stack's TLS and
        token; ``kwargs`` go to ``EventGridTopic`` (input_schema, key, sleep, clock, port)."""
        topic_id = (
            f"/subscriptions/{self.subscription_id}/resourceGroups/{self.resource_group}"
            f"/providers/Microsoft.EventGrid/topics/{name}"
        )
        return EventGridTopic.start(
            self.tls, subscription, topic_id=topic_id, token=self.token, **kwargs
        )

    def service_id(self, name: str) -> str:
        """The full ARM id of APIM service ``name``."""
        return self._arm_app.service_id(name)

    def describe(self) -> dict[str, Any]:
        """What ``devstack.json`` holds."""
        return {
            "vault_url": self.vault_url,
            "vault_name": self.vault_name,
            "arm_endpoint": self.arm_endpoint,
            "ca_bundle": str(self.ca_bundle),
            "subscription_id": self.subscription_id,
            "resource_group": self.resource_group,
            "apim_services": list(self.apim_services),
            "token": self.token,
        }

    def env(self) -> dict[str, str]:
        """Settings that point certrotate at this stack (the ``env`` file); with
        ``ROTATION_TRUST_ANCHORS`` when the state dir holds ``trust-anchors.pem``.
        ``ROTATION_CANARY`` is ``off`` unless ``canary_mode`` says otherwise: the stand-in's
        backends have made-up URLs unless a real server (nginx, ``devstack.backend``) serves
        them; ``ROTATION_CANARY_SERVER_CA`` is ``canary_server_ca`` when set;
        ``ROTATION_INBOUND_CERTIFICATES`` names the scene's inbound client certificate when the
        Key Vault holds it (``devstack.seed``)."""
        env = {
            "ROTATION_CANARY": self.canary_mode,
            "ROTATION_VAULTS": self.vault_url,
            "ROTATION_APIM_SERVICES": ",".join(self.service_id(s) for s in self.apim_services),
            "ROTATION_ARM_ENDPOINT": self.arm_endpoint,
            "ROTATION_DEVSTACK_CA_BUNDLE": str(self.ca_bundle),
            "ROTATION_DEVSTACK_TOKEN": self.token,
            "ROTATION_KEYVAULT_VERIFY_CHALLENGE_RESOURCE": "false",
        }
        anchors = self.state_dir / TRUST_ANCHORS_FILE
        if anchors.is_file():
            env["ROTATION_TRUST_ANCHORS"] = str(anchors)
        if self.canary_server_ca is not None:
            env["ROTATION_CANARY_SERVER_CA"] = str(self.canary_server_ca)
        with self.state.lock:
            inbound = self.state.kv.get(INBOUND_CERTIFICATE) is not None
        if inbound:
            env["ROTATION_INBOUND_CERTIFICATES"] = (
                f"{self.vault_url}/certificates/{INBOUND_CERTIFICATE}"
            )
        return env

    def write_files(self, directory: Path) -> None:
        """Write ``devstack.json`` and ``env`` (mode 0600: they hold the token) into ``directory``."""
        directory.mkdir(parents=True, exist_ok=True)
        for name, text in (
            ("devstack.json", json.dumps(self.describe(), indent=2) + "\n"),
            ("env", "".join(f"{k}={v}\n" for k, v in self.env().items())),
        ):
            path = directory / name
            path.touch(mode=0o600)
            path.write_text(text)

    # --- direct seeding ---------------------------------------------------------------------

    def import_certificate(
        self,
        name: str,
        data: bytes,
        *,
        content_type: str = PKCS12,
        password: bytes | None = None,
        enabled: bool = True,
    ) -> str:
        """Add a version of certificate ``name`` from PKCS#12 or PEM bytes; return its version.

        Raises:
            devstack.bundles.BundleError: the bytes are not a readable bundle.
        """
        parsed = parse_bundle(data, password=password)
        with self.state.lock:
            entry = self.state.kv.add_version(
                name, parsed, content_type=content_type, enabled=enabled
            )
        return entry.version

    def put_apim_certificate(self, service: str, cert_id: str, secret_identifier: str) -> None:
        """Create or replace a Key Vault-backed certificate entity, computing it like the PUT.

        Raises:
            KeyError: the service does not exist.
            ValueError: the secret cannot be fetched and the entity is new.
        """
        entry, why = apim.fetch_from_key_vault(self.state, secret_identifier)
        now = self.state.clock()
        with self.state.lock:
            svc = self._service(service)
            existing = svc.certificates.get(cert_id.lower())
            if entry is None and existing is None:
                raise ValueError(f"cannot fetch {cert_id!r} from Key Vault: {why}")
            props: dict[str, Any] = dict(existing.properties) if existing else {}
            if entry is not None:
                props.update(
                    subject=entry.subject,
                    thumbprint=entry.thumbprint,
                    expirationDate=apim.iso_timestamp(entry.exp)[:19] + "Z",
                )
            status = apim.status_success(now) if entry else apim.status_failed(now, why)
            props["keyVault"] = {
                "secretIdentifier": secret_identifier,
                "identityClientId": None,
                "lastStatus": status,
            }
            svc.certificates[cert_id.lower()] = Entity(cert_id, props, self.state.next_etag())

    def put_backend(
        self,
        service: str,
        backend_id: str,
        *,
        url: str,
        certificate_ids: list[str],
        tls: dict[str, bool] | None = None,
    ) -> None:
        """Create or replace a backend presenting ``certificate_ids`` (``tls``: the backend's
        ``validateCertificateChain``/``validateCertificateName``, absent when None).

        Raises:
            KeyError: the service does not exist.
        """
        props: dict[str, Any] = {
            "url": url,
            "protocol": "http",
            "credentials": {"certificateIds": list(certificate_ids)},
        }
        if tls is not None:
            props["tls"] = dict(tls)
        with self.state.lock:
            svc = self._service(service)
            svc.backends[backend_id.lower()] = Entity(backend_id, props, self.state.next_etag())

    def put_api(self, service: str, api_id: str, *, display_name: str, path: str) -> None:
        """Create or replace an API (as its PUT would store it, provisioned).

        Raises:
            KeyError: the service does not exist.
        """
        props = {"displayName": display_name, "path": path, "protocols": ["https"]}
        props |= {"isCurrent": True, "apiRevision": "1", "provisioningState": "Succeeded"}
        with self.state.lock:
            svc = self._service(service)
            svc.apis[api_id.lower()] = Entity(api_id, props, self.state.next_etag())

    def put_operation(
        self, service: str, api_id: str, operation_id: str, *, method: str, url_template: str
    ) -> None:
        """Create or replace an operation of an existing API.

        Raises:
            KeyError: the service or the API does not exist.
        """
        props = {"displayName": operation_id, "method": method, "urlTemplate": url_template}
        with self.state.lock:
            svc = self._service(service)
            if api_id.lower() not in svc.apis:
                raise KeyError(f"no API {api_id!r} in {service!r}")
            key = f"{api_id}/{operation_id}".lower()
            svc.operations[key] = Entity(operation_id, props, self.state.next_etag())

    def put_product(self, service: str, product_id: str, *, display_name: str) -> None:
        """Create or replace a product (published).

        Raises:
            KeyError: the service does not exist.
        """
        props = {"displayName": display_name, "subscriptionRequired": True, "state": "published"}
        with self.state.lock:
            svc = self._service(service)
            svc.products[product_id.lower()] = Entity(product_id, props, self.state.next_etag())

    def put_policy(
        self,
        service: str,
        value: str,
        *,
        api: str = "",
        operation: str = "",
        product: str = "",
    ) -> None:
        """Create or replace the policy document (``rawxml`` text, stored as written) of the
        global scope, or of ``product``, ``api``, or ``api``'s ``operation``.

        Raises:
            KeyError: the service, or the product, API or operation, does not exist.
            ValueError: ``value`` is not a well-formed ``<policies>`` document.
        """
        if not arm_policies.well_formed(value):
            raise ValueError("not a well-formed <policies> document")
        route = Route("policies", "policy", api=api, operation=operation, product=product)
        with self.state.lock:
            svc = self._service(service)
            parents = (
                (svc.products, product),
                (svc.apis, api),
                (svc.operations, f"{api}/{operation}" if operation else ""),
            )
            for store, key in parents:
                if key and key.lower() not in store:
                    raise KeyError(f"no {key!r} in {service!r}")
            store, key = route.store_and_key(svc)
            props = {"value": value, "format": "rawxml"}
            store[key] = Entity("policy", props, self.state.next_etag())

    def _service(self, name: str) -> Any:
        svc = self.state.service(name)
        if svc is None:
            raise KeyError(f"no APIM service {name!r} in the devstack")
        return svc
