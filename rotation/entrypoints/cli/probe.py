"""`certrotate probe`: the canary by hand, presenting a bundle to an https backend.

Exit codes: 0 the backend accepted the certificate, 1 it refused it or could not be reached,
2 usage (missing file, unreadable bundle or key, no private key, not an https URL, the
``--password-env`` variable unset). ``--json`` prints exactly one JSON object. The private key
goes from memory into OpenSSL only; no key material, bundle body or password is ever printed.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from urllib.parse import urlsplit

import click
from cryptography import x509
from rich.console import Console

from rotation.adapters.canary import ClientIdentity, ProbeRequest, TlsProber
from rotation.domain.bundle import Bundle, extend_bundle, parse_bundle, parse_private_key
from rotation.domain.canary import ProbeOutcome, ProbeResult, classify
from rotation.domain.errors import BundleFormatError

__all__ = ["COMMANDS", "probe", "probe_to_dict"]

_FILE = click.Path(exists=True, dir_okay=False, path_type=Path)


def _https_url(_ctx: click.Context, _param: click.Parameter, value: str) -> str:
    try:
        parts = urlsplit(value)
        _ = parts.port
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a URL") from None
    if parts.scheme.lower() != "https" or not parts.hostname:
        raise click.BadParameter(f"{value!r} must be an https URL with a host")
    return value


def _password(variable: str | None) -> bytes | None:
    if variable is None:
        return None
    # Imported here: rotation.config is the one module that reads the process environment.
    from rotation.config import read_environment  # noqa: PLC0415

    value = read_environment().get(variable)
    if value is None:
        raise click.BadParameter(f"the variable {variable} is not set", param_hint="--password-env")  # fmt: skip
    return value.encode()


def _load_identity(bundle: Path, key: Path | None, password: bytes | None) -> ClientIdentity:
    try:
        parsed: Bundle = parse_bundle(bundle.read_bytes(), password=password)
    except BundleFormatError as exc:
        raise click.BadParameter(f"{bundle.name}: {exc}", param_hint="--bundle") from None
    if key is not None:
        try:
            private_key = parse_private_key(key.read_bytes(), password=password)
        except BundleFormatError as exc:
            raise click.BadParameter(f"{key.name}: {exc}", param_hint="--key") from None
        parsed = extend_bundle(parsed, private_key=private_key)
    try:
        return ClientIdentity.from_bundle(parsed)
    except ValueError as exc:
        raise click.BadParameter(f"{bundle.name}: {exc}; pass --key", param_hint="--bundle") from None  # fmt: skip


def _load_server_ca(paths: tuple[Path, ...]) -> tuple[x509.Certificate, ...]:
    cas: list[x509.Certificate] = []
    for path in paths:
        try:
            cas.extend(x509.load_pem_x509_certificates(path.read_bytes()))
        except ValueError:
            raise click.BadParameter(f"{path}: holds no PEM certificate", param_hint="--server-ca") from None  # fmt: skip
    return tuple(cas)


def _issuer_requested(identity: ClientIdentity, names: tuple[str, ...] | None) -> bool | None:
    """Whether the server's CA names include the bundle's issuer or a CA above it in the bundle.

    None when the server sent no names (or asked for no certificate): nothing to compare.
    """
    if not names:
        return None
    wanted = {n.lower() for n in names}
    path = [identity.leaf.issuer, *(c.issuer for c in identity.chain)]
    return any(name.rfc4514_string().lower() in wanted for name in path)


def probe_to_dict(result: ProbeResult, identity: ClientIdentity) -> dict[str, object]:
    """The JSON shape: ``accepted``, ``outcome``, ``reason``, ``detail`` and what the probe saw."""
    obs = result.observation
    names = list(obs.requested_ca_names) if obs.requested_ca_names is not None else None
    server = asdict(obs.server_certificate) if obs.server_certificate else None
    if server is not None:
        server["not_after"] = server["not_after"].isoformat().replace("+00:00", "Z")
    return {
        "url": obs.url,
        "accepted": result.outcome is ProbeOutcome.ACCEPTED,
        "outcome": str(result.outcome),
        "reason": result.reason,
        "detail": result.detail,
        "tls_version": obs.tls_version,
        "cipher": obs.cipher,
        "server_certificate": server,
        "certificate_requested": obs.certificate_requested,
        "requested_ca_names": names,
        "bundle_issuer_requested": _issuer_requested(identity, obs.requested_ca_names),
        "client_certificate": {
            "subject": identity.leaf.subject.rfc4514_string(),
            "issuer": identity.leaf.issuer.rfc4514_string(),
        },
        "http_status": obs.http_status,
        "error": obs.error,
    }


@click.command("probe")
@click.argument("url", callback=_https_url)
@click.option("--bundle", "bundle", type=_FILE, required=True, help="The certificate to present (PKCS#12, PEM or DER), chain included.")  # fmt: skip
@click.option("--key", "key", type=_FILE, default=None, help="The private key, if not in the bundle.")  # fmt: skip
@click.option("--password-env", "password_env", metavar="VAR", default=None, help="Environment variable holding the PKCS#12/key password.")  # fmt: skip
@click.option("--server-ca", "server_ca", type=_FILE, multiple=True, help="Extra CAs (PEM) for the backend's server certificate, on top of the system store.")  # fmt: skip
@click.option("--no-validate-chain", "no_chain", is_flag=True, help="Do not check the server's chain (the backend's tls.validateCertificateChain=false).")  # fmt: skip
@click.option("--no-validate-name", "no_name", is_flag=True, help="Do not check the server's name (tls.validateCertificateName=false).")  # fmt: skip
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), default=5.0, show_default=True, help="Seconds for the whole probe.")  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def probe(  # click passes every option by keyword
    *,
    url: str,
    bundle: Path,
    key: Path | None,
    password_env: str | None,
    server_ca: tuple[Path, ...],
    no_chain: bool,
    no_name: bool,
    timeout: float,
    as_json: bool,
) -> None:
    """Present BUNDLE to the https backend URL as APIM would, then GET URL's path.

    Reports the TLS version and cipher, the server's certificate, the CA names the server
    asked for, whether the bundle's issuer is among them, and the HTTP status.
    Exit 0 when the backend accepts the certificate, 1 when it does not, 2 on a usage error.
    """
    identity = _load_identity(bundle, key, _password(password_env))
    prober = TlsProber(timeout=timeout, server_ca=_load_server_ca(server_ca))
    request = ProbeRequest(
        url=url, identity=identity, validate_chain=not no_chain, validate_name=not no_name
    )
    result = classify(prober.probe(request))
    report = probe_to_dict(result, identity)
    if as_json:
        click.echo(json.dumps(report))
    else:
        _render(report)
    raise click.exceptions.Exit(0 if report["accepted"] else 1)


def _render(report: dict[str, object]) -> None:
    console = Console(highlight=False, soft_wrap=True)
    client = report["client_certificate"]
    assert isinstance(client, dict)  # noqa: S101 - built above
    console.print(f"[bold]Probe[/bold]   {report['url']}")
    console.print(f"  presented   {client['subject']}  (issuer {client['issuer']})")
    if report["tls_version"]:
        console.print(f"  TLS         {report['tls_version']}  {report['cipher']}")
    server = report["server_certificate"]
    if isinstance(server, dict):
        console.print(f"  server      {server['subject']}")
        console.print(f"    issuer    {server['issuer']}")
        console.print(f"    not after {server['not_after']}")
    names = report["requested_ca_names"]
    if isinstance(names, list):
        console.print("  CA names the server asked for:" if names else "  the server asked for a client certificate without naming CAs")  # fmt: skip
        for name in names:
            console.print(f"    - {name}")
        if names:
            among = "yes" if report["bundle_issuer_requested"] else "no"
            console.print(f"  bundle issuer among them: {among}")
    else:
        console.print("  the server did not ask for a client certificate")
    if report["http_status"] is not None:
        console.print(f"  HTTP        {report['http_status']}")
    verdict = "[green]ACCEPTED[/green]" if report["accepted"] else f"[red]{str(report['outcome']).upper()}[/red]"  # fmt: skip
    console.print(f"Result: {verdict}  {report['detail']}")


COMMANDS: list[click.Command] = [probe]
