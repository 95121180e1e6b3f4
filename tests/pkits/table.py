"""Print the PKITS table for both revocation modes: ``.venv/bin/python -m tests.pkits.table``.

Columns: invalid chains accepted, valid chains accepted, errors (a case that raised), and for
soft mode the invalid chains accepted *without* a ``revocation.unavailable`` finding.
"""

from __future__ import annotations

from rotation.domain.pkix import TrustAnchors
from rotation.domain.policy import RevocationMode
from tests.pkits import vectors


def main() -> None:
    anchors = TrustAnchors([vectors.anchor()])
    names = vectors.case_names()
    valid = [n for n in names if n.startswith("Valid")]
    invalid = [n for n in names if n.startswith("Invalid")]
    print(f"NIST PKITS (cryptography-vectors), {len(invalid)} invalid and {len(valid)} valid cases, CRLs of the path's CAs given")  # fmt: skip  # noqa: T201
    print("| mode | invalid accepted | valid accepted | errors | invalid accepted without revocation.unavailable |")  # fmt: skip  # noqa: T201
    print("|---|---|---|---|---|")  # noqa: T201
    for mode in (RevocationMode.HARD, RevocationMode.SOFT):
        accepted: dict[str, bool] = {}
        silent = 0
        errors = 0
        for name in names:
            case = vectors.load(name)
            if case is None:  # cryptography cannot parse the EE: format.unreadable, rejected
                accepted[name] = False
                continue
            try:
                outcome = vectors.run(case, mode, anchors)
            except Exception:
                errors += 1
                accepted[name] = False
                continue
            accepted[name] = outcome.accepted
            if name.startswith("Invalid") and outcome.accepted and "revocation.unavailable" not in outcome.codes:  # fmt: skip
                silent += 1
        bad = sum(accepted[n] for n in invalid)
        good = sum(accepted[n] for n in valid)
        print(f"| {mode} | {bad} / {len(invalid)} | {good} / {len(valid)} | {errors} | {silent} |")  # noqa: T201


if __name__ == "__main__":
    main()
