"""`certrotate validate`: check a certificate bundle against the policy before it goes to the vault.

By default it gives the service's answer: the policy comes from the same ``ROTATION_*`` settings
as the app (``ROTATION_TRUST_ANCHORS`` when no ``--trust`` is given, ``ROTATION_MIN_VALID_DAYS``,
``ROTATION_CLOCK_SKEW_SECONDS``, ``ROTATION_REVOCATION``, ``ROTATION_REQUIRE_EKU``, the CRL fetch
limits), read through ``rotation.config``, and the private key is required (``--no-require-key``
checks only the certificate path). Flags override single settings.

Exit codes (scripts depend on them): 0 accepted, 1 rejected (including an unreadable bundle,
reported as ``format.unreadable``), 2 usage (missing file, bad flag, unreadable --trust/--crl,
invalid settings). ``--json`` prints exactly one JSON object: ``accepted``, ``findings``,
``leaf``, ``chain``. Private key material, PKCS#12/PEM bodies and the password (given by
``--password``, ``--password-env VAR`` or ``--password-prompt``) are never printed.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

import click
from cryptography import x509
from rich.console import Console
from rich.table import Table

from rotation.adapters.crl import HttpCrlFetcher
from rotation.config import Settings, read_environment
from rotation.domain.bundle import (
    Bundle,
    extend_bundle,
    parse_bundle,
    parse_certificates,
    parse_private_key,
)
from rotation.domain.errors import BundleFormatError, ConfigError
from rotation.domain.model import CertificateSummary, Severity, ValidationReport
from rotation.domain.policy import RevocationMode, ValidationPolicy
from rotation.domain.validation import unreadable_report, validate_bundle
from rotation.logconfig import quiet_library_logs

__all__ = ["COMMANDS", "report_to_dict", "validate"]

_T = TypeVar("_T")
_FILE = click.Path(exists=True, dir_okay=False, path_type=Path)
# Stand-ins for the settings `validate` does not use, so that Settings.from_env reports only
# what matters here (a bad ROTATION_MIN_VALID_DAYS, say) and never "ROTATION_VAULTS missing".
_UNUSED_SETTINGS = {
    "ROTATION_VAULTS": "https://certrotate-validate.vault.azure.net",
    "ROTATION_APIM_SERVICES": "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/validate/providers/Microsoft.ApiManagement/service/validate",
}


def report_to_dict(report: ValidationReport) -> dict[str, object]:
    """The JSON shape of a report: ``accepted``, ``findings``, ``leaf``, ``chain``."""

    def summary(item: CertificateSummary) -> dict[str, object]:
        out = asdict(item)
        for name in ("not_before", "not_after"):
            out[name] = out[name].isoformat().replace("+00:00", "Z")
        return out

    return {
        "accepted": report.accepted,
        "findings": [
            {
                "code": str(f.code),
                "severity": str(f.severity),
                "message": f.message,
                "certificate": f.certificate,
            }
            for f in report.findings
        ],
        "leaf": summary(report.leaf) if report.leaf else None,
        "chain": [summary(c) for c in report.chain],
    }


def _parse_at(_ctx: click.Context, _param: click.Parameter, value: str | None) -> datetime:
    if value is None:
        return datetime.now(UTC)
    try:
        moment = datetime.fromisoformat(value)
        return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    except ValueError:
        raise click.BadParameter(f"not an ISO-8601 time: {value!r}") from None
    except OverflowError:
        raise click.BadParameter(f"{value!r} is outside the range of UTC times") from None


def _settings(trust: tuple[Path, ...]) -> Settings:
    """The app's settings, for the validation policy (stand-ins for what validate ignores).

    Raises:
        click.UsageError: a validation setting is invalid, or no trust anchors anywhere.
    """
    env = dict(read_environment())
    for name, value in _UNUSED_SETTINGS.items():
        env.setdefault(name, value)
    if trust:  # --trust wins; the setting then only has to be well-formed if present
        env["ROTATION_TRUST_ANCHORS"] = str(trust[0])
    elif not env.get("ROTATION_TRUST_ANCHORS"):
        raise click.UsageError("no trust anchors: give --trust FILE or set ROTATION_TRUST_ANCHORS")  # fmt: skip
    try:
        return Settings.from_env(env)
    except ConfigError as exc:
        raise click.UsageError(f"invalid settings: {exc}") from None


def _password(password: str | None, env_name: str | None, prompt: bool) -> bytes | None:
    given = [x for x in (password is not None, env_name is not None, prompt) if x]
    if len(given) > 1:
        raise click.UsageError("give at most one of --password, --password-env and --password-prompt")  # fmt: skip
    if env_name is not None:
        value = read_environment().get(env_name)
        if value is None:
            raise click.BadParameter(f"environment variable {env_name} is not set", param_hint="--password-env")  # fmt: skip
        return value.encode()
    if prompt:
        return str(click.prompt("Password", hide_input=True, err=True)).encode()
    return password.encode() if password is not None else None


def _load_anchors(paths: tuple[Path, ...]) -> tuple[x509.Certificate, ...]:
    anchors: list[x509.Certificate] = []
    for path in paths:
        try:
            anchors.extend(parse_certificates(path.read_bytes()))
        except BundleFormatError as exc:
            raise click.BadParameter(f"{path}: {exc}", param_hint="--trust") from None
    return tuple(anchors)


def _load_crls(paths: tuple[Path, ...]) -> tuple[x509.CertificateRevocationList, ...]:
    crls = []
    for path in paths:
        data = path.read_bytes()
        try:
            pem = data.lstrip().startswith(b"-----BEGIN")
            crls.append(x509.load_pem_x509_crl(data) if pem else x509.load_der_x509_crl(data))
        except ValueError:
            raise click.BadParameter(f"{path}: not a PEM or DER CRL", param_hint="--crl") from None
    return tuple(crls)


def _read(path: Path, parse: Callable[[bytes], _T]) -> _T:
    try:
        return parse(path.read_bytes())
    except BundleFormatError as exc:
        raise BundleFormatError(f"{path.name}: {exc}") from None


def _load_bundle(
    path: Path, chain: tuple[Path, ...], key: Path | None, password: bytes | None
) -> Bundle:
    """The candidate: bundle, extra chain certificates and a separate key.

    Raises:
        BundleFormatError: any of them is unreadable (the message names which file).
    """
    bundle = _read(path, lambda data: parse_bundle(data, password=password))
    extra = [cert for item in chain for cert in _read(item, parse_certificates)]
    private_key = _read(key, lambda d: parse_private_key(d, password=password)) if key else None
    if not extra and private_key is None:
        return bundle
    return extend_bundle(bundle, certificates=extra, private_key=private_key)


@click.command("validate")
@click.argument("bundle", type=_FILE)
@click.option("--chain", "chain", type=_FILE, multiple=True, help="Extra chain certificates (PEM/DER).")  # fmt: skip
@click.option("--trust", "trust", type=_FILE, multiple=True, help="Trust anchors (PEM bundle/DER); default: ROTATION_TRUST_ANCHORS.")  # fmt: skip
@click.option("--key", "key", type=_FILE, default=None, help="The private key, if not in BUNDLE.")  # fmt: skip
@click.option("--password", default=None, help="PKCS#12 / encrypted key password (visible in the process list: prefer --password-env or --password-prompt).")  # fmt: skip
@click.option("--password-env", "password_env", default=None, metavar="VAR", help="Read the password from environment variable VAR.")  # fmt: skip
@click.option("--password-prompt", "password_prompt", is_flag=True, help="Prompt for the password (not echoed).")  # fmt: skip
@click.option("--require-key/--no-require-key", default=True, show_default=True, help="A bundle without a private key is rejected, as the service does; --no-require-key checks only the certificate path.")  # fmt: skip
@click.option("--crl", "crl", type=_FILE, multiple=True, help="CRLs to check (only those of the built path count).")  # fmt: skip
@click.option("--revocation", type=click.Choice([m.value for m in RevocationMode]), default=None, help="off/soft/hard; default: ROTATION_REVOCATION (soft).")  # fmt: skip
@click.option("--min-days", type=click.IntRange(min=0), default=None, help="Minimum remaining lifetime; default: ROTATION_MIN_VALID_DAYS (14).")  # fmt: skip
@click.option("--at", "at", callback=_parse_at, default=None, help="Validation time, ISO-8601 (default: now, UTC; naive means UTC).")  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def validate(  # click passes every option by keyword
    *,
    bundle: Path,
    chain: tuple[Path, ...],
    trust: tuple[Path, ...],
    key: Path | None,
    password: str | None,
    password_env: str | None,
    password_prompt: bool,
    require_key: bool,
    crl: tuple[Path, ...],
    revocation: str | None,
    min_days: int | None,
    at: datetime,
    as_json: bool,
) -> None:
    """Validate BUNDLE (PKCS#12, PEM or DER) for use as an APIM client certificate.

    The policy is the service's (the ROTATION_* settings); flags override it.
    Exit 0 when accepted, 1 when rejected, 2 on a usage error.
    """
    quiet_library_logs()
    settings = _settings(trust)
    anchors = (
        _load_anchors(trust) if trust else tuple(parse_certificates(settings.trust_anchor_pem()))
    )
    crls = _load_crls(crl)
    policy = ValidationPolicy(
        min_remaining_days=settings.min_valid_days if min_days is None else min_days,
        clock_skew_seconds=settings.clock_skew_seconds,
        require_eku=settings.require_eku,
        revocation=RevocationMode(revocation or settings.revocation),
        require_key=require_key,
    )
    secret = _password(password, password_env, password_prompt)
    try:
        candidate = _load_bundle(bundle, chain, key, secret)
    except BundleFormatError as exc:
        report = unreadable_report(str(exc))
    else:
        fetcher = HttpCrlFetcher(settings.crl_timeout_seconds, settings.crl_max_bytes) if policy.revocation is not RevocationMode.OFF else None  # fmt: skip
        try:
            report = validate_bundle(
                candidate, trust_anchors=anchors, policy=policy, at=at, crls=crls, crl_fetcher=fetcher
            )  # fmt: skip
        finally:
            if fetcher is not None:
                fetcher.close()
    if as_json:
        click.echo(json.dumps(report_to_dict(report)))
    else:
        _render(report)
    raise click.exceptions.Exit(0 if report.accepted else 1)


def _render(report: ValidationReport) -> None:
    console = Console(highlight=False, soft_wrap=True)
    if report.leaf is not None:
        leaf = report.leaf
        key = f"{leaf.key_type} {leaf.key_size}" if leaf.key_size else leaf.key_type
        console.print(f"[bold]Leaf[/bold]  {leaf.subject}")
        console.print(f"  issuer      {leaf.issuer}")
        console.print(f"  serial      {leaf.serial}")
        console.print(f"  SHA-1       {leaf.thumbprint_sha1}")
        console.print(f"  SHA-256     {leaf.thumbprint_sha256}")
        console.print(
            f"  valid       {leaf.not_before.isoformat()} .. {leaf.not_after.isoformat()}"
        )
        console.print(f"  key         {key}")
    if report.chain:
        console.print("[bold]Chain[/bold] (leaf first, trust anchor last)")
        for depth, item in enumerate(report.chain):
            console.print(f"  {depth}. {item.subject}  [{item.thumbprint_sha1}]")
    if report.findings:
        table = Table("severity", "code", "certificate", "message", title="Findings")
        for f in report.findings:
            style = "red" if f.severity is Severity.ERROR else "yellow"
            table.add_row(f"[{style}]{f.severity}[/{style}]", str(f.code), f.certificate or "", f.message)  # fmt: skip
        console.print(table)
    verdict = "[green]ACCEPTED[/green]" if report.accepted else "[red]REJECTED[/red]"
    console.print(f"Result: {verdict}")


COMMANDS: list[click.Command] = [validate]
