"""The Key Vault data-plane stand-in: certificates and their secrets, with challenge auth.

Speaks the wire protocol of the reference (section D): a request without ``Authorization`` gets
the 401 challenge the SDKs expect, after which any bearer token is accepted; bundles carry
``x5t``/``cer``/integer attributes; version lists page with an absolute ``nextLink`` on this
server's own scheme, host and port. Any ``api-version`` is accepted.
"""

from __future__ import annotations

import base64
import re
from typing import Any
from urllib.parse import quote

from devstack.bundles import PEM, PKCS12, BundleError, parse_bundle, secret_value
from devstack.server import Request, Response, json_response
from devstack.state import DevstackState, KvVersion

__all__ = ["KeyVaultApp"]

_NAME = r"(?P<name>[^/]+)"
_ROUTES: list[tuple[str, re.Pattern[str], str]] = [
    ("GET", re.compile(rf"^/certificates/{_NAME}/versions$"), "_list_versions"),
    ("POST", re.compile(rf"^/certificates/{_NAME}/import$"), "_import"),
    ("GET", re.compile(rf"^/certificates/{_NAME}/policy$"), "_get_policy"),
    ("GET", re.compile(rf"^/certificates/{_NAME}(?:/(?P<version>[^/]*))?$"), "_get_certificate"),
    ("PATCH", re.compile(rf"^/certificates/{_NAME}(?:/(?P<version>[^/]*))?$"), "_update"),
    ("GET", re.compile(rf"^/secrets/{_NAME}(?:/(?P<version>[^/]*))?$"), "_get_secret"),
]
_VALID_NAME = re.compile(r"^[0-9A-Za-z-]{1,127}$")
_PAGE_MAX = 25


class KeyVaultApp:
    """The Key Vault stand-in served by a ``StandInServer``."""

    def __init__(self, state: DevstackState, *, tenant_id: str) -> None:
        self.state = state
        self.tenant_id = tenant_id

    # --- App protocol ------------------------------------------------------------------------

    def error(self, status: int, code: str, message: str) -> Response:
        """Key Vault's error shape ``{"error": {"code", "message"}}``."""
        return json_response(status, {"error": {"code": code, "message": message}})

    def simulate_concurrent_write(self, request: Request) -> None:
        """Key Vault entities carry no ETags in this protocol; nothing to bump."""

    def logged(self, request: Request) -> bool:  # noqa: ARG002 - App protocol
        """Every Key Vault request is logged."""
        return True

    def handle(self, request: Request) -> Response:
        """Authenticate (challenge), route, and answer."""
        auth = request.headers.get("authorization", "")
        if not auth.startswith("Bearer ") or not auth[7:].strip():
            return self._challenge()
        for method, pattern, handler in _ROUTES:
            match = pattern.match(request.path)
            if match and method == request.method:
                name = match.group("name")
                if not _VALID_NAME.match(name):
                    return self.error(400, "BadParameter", "The object name is invalid.")
                result: Response = getattr(self, handler)(request, **match.groupdict())
                return result
        return self.error(404, "NotFound", "No such Key Vault operation in the devstack.")

    def _challenge(self) -> Response:
        response = self.error(
            401, "Unauthorized", "AKV10000: Request is missing a Bearer or PoP token."
        )
        response.headers["WWW-Authenticate"] = (
            f'Bearer authorization="https://login.microsoftonline.com/{self.tenant_id}", '
            'resource="https://vault.azure.net"'
        )
        return response

    # --- JSON shapes ------------------------------------------------------------------------

    def bundle(self, base: str, entry: KvVersion, *, with_policy: bool) -> dict[str, Any]:
        """The certificate bundle (D.3)."""
        ref = f"{quote(entry.name)}/{entry.version}"
        body: dict[str, Any] = {
            "id": f"{base}/certificates/{ref}",
            "kid": f"{base}/keys/{ref}",
            "sid": f"{base}/secrets/{ref}",
            "x5t": entry.x5t,
            "cer": entry.cer,
            "contentType": entry.content_type,
            "attributes": {
                **_attributes(entry),
                "recoverableDays": 90,
            },
            "tags": dict(entry.tags),
        }
        if with_policy:
            body["policy"] = self._policy(base, entry)
        return body

    def _policy(self, base: str, entry: KvVersion) -> dict[str, Any]:
        return {
            "id": f"{base}/certificates/{quote(entry.name)}/policy",
            "key_props": {"exportable": True, "kty": "RSA", "key_size": 2048, "reuse_key": False},
            "secret_props": {
                "contentType": self.state.kv.policies.get(entry.name.lower(), PKCS12)
            },
            "x509_props": {"subject": entry.subject, "validity_months": 12},
            "lifetime_actions": [
                {
                    "trigger": {"lifetime_percentage": 80},
                    "action": {"action_type": "EmailContacts"},
                }
            ],
            "issuer": {"name": "Unknown"},
            "attributes": {"enabled": True, "created": entry.created, "updated": entry.created},
        }

    # --- certificates -----------------------------------------------------------------------

    def _get_certificate(self, request: Request, name: str, version: str | None) -> Response:
        with self.state.lock:
            entry = self.state.kv.get(name, version)
            if entry is None:
                return _not_found("CertificateNotFound", "certificate", name, version)
            return json_response(
                200, self.bundle(request.base_url, entry, with_policy=not version)
            )

    def _get_policy(self, request: Request, name: str) -> Response:
        with self.state.lock:
            entry = self.state.kv.get(name)
            if entry is None:
                return _not_found("CertificateNotFound", "certificate", name, None)
            return json_response(200, self._policy(request.base_url, entry))

    def _list_versions(self, request: Request, name: str) -> Response:
        try:
            size = int(request.query.get("maxresults") or _PAGE_MAX)
            skip = int(request.query.get("$skiptoken") or 0)
        except ValueError:
            return self.error(400, "BadParameter", "maxresults and $skiptoken must be integers.")
        if not 1 <= size <= _PAGE_MAX or skip < 0:
            return self.error(400, "BadParameter", "maxresults must be between 1 and 25.")
        with self.state.lock:
            versions = self.state.kv.versions(name)
            if not versions:
                return _not_found("CertificateNotFound", "certificate", name, None)
            page = versions[skip : skip + size]
            base = request.base_url
            items = [
                {
                    "id": f"{base}/certificates/{quote(v.name)}/{v.version}",
                    "x5t": v.x5t,
                    "attributes": _attributes(v),
                    "tags": dict(v.tags),
                }
                for v in page
            ]
        next_link = None
        if skip + size < len(versions):
            api = quote(request.query.get("api-version", "7.5"))
            next_link = (
                f"{base}/certificates/{quote(name)}/versions?api-version={api}"
                f"&$skiptoken={skip + size}&maxresults={size}"
            )
        return json_response(200, {"value": items, "nextLink": next_link})

    def _import(self, request: Request, name: str) -> Response:
        try:
            body = request.json() or {}
            value = body["value"]
            password = body.get("pwd")
            policy = body.get("policy") or {}
            content_type = (policy.get("secret_props") or {}).get("contentType")
            attributes = body.get("attributes") or {}
        except (ValueError, KeyError, AttributeError, TypeError):
            return self.error(400, "BadParameter", "The import body must be JSON with 'value'.")
        if content_type not in (None, PKCS12, PEM):
            return self.error(400, "BadParameter", "Unsupported secret content type.")
        try:
            parsed = parse_bundle(value.encode(), password=password.encode() if password else None)
        except (BundleError, AttributeError) as exc:
            return self.error(400, "BadParameter", f"The certificate cannot be imported: {exc}")
        with self.state.lock:
            entry = self.state.kv.add_version(
                name,
                parsed,
                content_type=content_type
                or self.state.kv.policies.get(name.lower(), parsed.content_type),
                enabled=bool(attributes.get("enabled", True)),
                tags=body.get("tags") or {},
            )
            result = self.bundle(request.base_url, entry, with_policy=True)
        self.state.save()
        return json_response(200, result)

    def _update(self, request: Request, name: str, version: str | None) -> Response:
        try:
            body = request.json() or {}
            attributes = body.get("attributes") or {}
            tags = body.get("tags")
        except (ValueError, AttributeError):
            return self.error(400, "BadParameter", "The update body must be a JSON object.")
        with self.state.lock:
            entry = self.state.kv.get(name, version)
            if entry is None:
                return _not_found("CertificateNotFound", "certificate", name, version)
            if "enabled" in attributes:
                entry.enabled = bool(attributes["enabled"])
            if tags is not None:
                entry.tags = {str(k): str(v) for k, v in tags.items()}
            self.state.kv.touch(entry)
            result = self.bundle(request.base_url, entry, with_policy=not version)
        self.state.save()
        return json_response(200, result)

    # --- secrets ----------------------------------------------------------------------------

    def _get_secret(self, request: Request, name: str, version: str | None) -> Response:
        out = request.query.get("outContentType")
        if out not in (None, PEM):
            return self.error(
                400, "BadParameter", "outContentType must be application/x-pem-file."
            )
        with self.state.lock:
            entry = self.state.kv.get(name, version)
            if entry is None:
                return _not_found("SecretNotFound", "secret", name, version)
            if not entry.enabled:
                message = "Operation get is not allowed on a disabled secret."
                inner = {"code": "SecretDisabled"}
                payload = {"error": {"code": "Forbidden", "message": message, "innererror": inner}}
                return json_response(403, payload)
            value, content_type = entry.secret_value, entry.content_type
            ref = f"{quote(entry.name)}/{entry.version}"
            attributes = _attributes(entry)
            tags = dict(entry.tags)
        if out == PEM and content_type == PKCS12:
            value = secret_value(parse_bundle(base64.b64decode(value)), PEM)
            content_type = PEM
        base = request.base_url
        return json_response(
            200,
            {
                "value": value,
                "contentType": content_type,
                "id": f"{base}/secrets/{ref}",
                "managed": True,
                "kid": f"{base}/keys/{ref}",
                "attributes": attributes,
                "tags": tags,
            },
        )


def _attributes(entry: KvVersion) -> dict[str, Any]:
    return {
        "enabled": entry.enabled,
        "nbf": entry.nbf,
        "exp": entry.exp,
        "created": entry.created,
        "updated": entry.updated,
        "recoveryLevel": "Recoverable+Purgeable",
    }


def _not_found(code: str, kind: str, name: str, version: str | None) -> Response:
    what = f"{name}/{version}" if version else name
    message = f"A {kind} with (name/id) {what} was not found in this key vault."
    return json_response(404, {"error": {"code": code, "message": message}})
