"""`certrotate validate`: check a certificate bundle against the policy before it goes to the vault.

Exit codes (scripts depend on them): 0 accepted, 1 rejected (including an unreadable bundle,
reported as ``format.unreadable``), 2 usage (missing file, bad flag, unreadable --trust/--crl).
``--json`` prints exactly one JSON object: ``accepted``, ``findings``, ``leaf``, ``chain``.
Private key material, PKCS#12/PEM bodies and the password are never printed.
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
from rotation.domain.bundle import (
    Bundle,
    extend_bundle,
    parse_bundle,
    parse_certificates,
    parse_private_key,
)
from rotation.domain.errors import BundleFormatError
from rotation.domain.model import CertificateSummary, Severity, ValidationReport
from rotation.domain.policy import RevocationMode, ValidationPolicy
from rotation.domain.validation import unreadable_report, validate_bundle

__all__ = ["COMMANDS", "report_to_dict", "validate"]

_T = TypeVar("_T")
_FILE = click.Path(exists=True, dir_okay=False, path_type=Path)
_CRL_TIMEOUT_SECONDS = 5.0
_CRL_MAX_BYTES = 4 * 1024 * 1024


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
    except ValueError:
        raise click.BadParameter(f"not an ISO-8601 time: {value!r}") from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


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
@click.option("--trust", "trust", type=_FILE, multiple=True, help="Trust anchors (PEM bundle/DER); none: nothing is trusted.")  # fmt: skip
@click.option("--key", "key", type=_FILE, default=None, help="The private key, if not in BUNDLE.")  # fmt: skip
@click.option("--password", default=None, help="PKCS#12 / encrypted key password (default: none).")  # fmt: skip
@click.option("--require-key", is_flag=True, help="A bundle without a private key is rejected.")  # fmt: skip
@click.option("--crl", "crl", type=_FILE, multiple=True, help="CRLs to check (always checked).")
@click.option("--revocation", type=click.Choice([m.value for m in RevocationMode]), default="soft", show_default=True, help="Also fetch CRLs from distribution points (soft/hard).")  # fmt: skip
@click.option("--min-days", type=click.IntRange(min=0), default=14, show_default=True, help="Minimum remaining lifetime.")  # fmt: skip
@click.option("--at", "at", callback=_parse_at, default=None, help="Validation time, ISO-8601 (default: now, UTC; naive means UTC).")  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def validate(  # click passes every option by keyword
    *,
    bundle: Path,
    chain: tuple[Path, ...],
    trust: tuple[Path, ...],
    key: Path | None,
    password: str | None,
    require_key: bool,
    crl: tuple[Path, ...],
    revocation: str,
    min_days: int,
    at: datetime,
    as_json: bool,
) -> None:
    """Validate BUNDLE (PKCS#12, PEM or DER) for use as an APIM client certificate.

    Exit 0 when accepted, 1 when rejected, 2 on a usage error.
    """
    anchors, crls = _load_anchors(trust), _load_crls(crl)
    policy = ValidationPolicy(
        min_remaining_days=min_days, revocation=RevocationMode(revocation), require_key=require_key
    )
    secret = password.encode() if password is not None else None
    try:
        candidate = _load_bundle(bundle, chain, key, secret)
    except BundleFormatError as exc:
        report = unreadable_report(str(exc))
    else:
        fetcher = HttpCrlFetcher(_CRL_TIMEOUT_SECONDS, _CRL_MAX_BYTES) if policy.revocation is not RevocationMode.OFF else None  # fmt: skip
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
        _render(report, hint_trust=not trust)
    raise click.exceptions.Exit(0 if report.accepted else 1)


def _render(report: ValidationReport, *, hint_trust: bool) -> None:
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
    if hint_trust and report.leaf is not None:
        console.print("No --trust given: every chain is untrusted.")
    verdict = "[green]ACCEPTED[/green]" if report.accepted else "[red]REJECTED[/red]"
    console.print(f"Result: {verdict}")


COMMANDS: list[click.Command] = [validate]
