"""Expected verdicts of the NIST PKITS cases under `hard` revocation, with the reason.

Each entry: case -> (verdict, the path/revocation finding code that must be present or None,
reason). Invalid cases name the code that rejects them; in `soft` mode an invalid case may be
accepted only with a `revocation.unavailable` finding, and a valid one is always accepted.
"""

from __future__ import annotations

EXPECTED: dict[str, tuple[str, str | None, str]] = {
    "InvalidBadCRLIssuerNameTest5": (
        "reject",
        "revocation.unavailable",
        "4.4 basic CRL processing: no CRL that is valid for the certificate (signature, signer, scope, dates, critical extensions) establishes its status",
    ),
    "InvalidBadCRLSignatureTest4": (
        "reject",
        "revocation.unavailable",
        "4.1 signature verification: no CRL that is valid for the certificate (signature, signer, scope, dates, critical extensions) establishes its status",
    ),
    "InvalidBasicSelfIssuedCRLSigningKeyTest7": (
        "reject",
        "revocation.revoked",
        "4.5 self-issued key rollover certificates: a valid CRL of the path lists a certificate of the path",
    ),
    "InvalidBasicSelfIssuedCRLSigningKeyTest8": (
        "reject",
        "chain.untrusted",
        "4.5 self-issued key rollover certificates: RFC 5280 path validation refuses the path",
    ),
    "InvalidBasicSelfIssuedNewWithOldTest5": (
        "reject",
        "revocation.revoked",
        "4.5 self-issued key rollover certificates: a valid CRL of the path lists a certificate of the path",
    ),
    "InvalidBasicSelfIssuedOldWithNewTest2": (
        "reject",
        "revocation.revoked",
        "4.5 self-issued key rollover certificates: a valid CRL of the path lists a certificate of the path",
    ),
    "InvalidCASignatureTest2": (
        "reject",
        "chain.bad_signature",
        "4.1 signature verification: a certificate is not signed by its issuer's key",
    ),
    "InvalidCAnotAfterDateTest5": (
        "reject",
        "chain.issuer_expired",
        "4.2 validity periods: a CA certificate is outside its validity period",
    ),
    "InvalidCAnotBeforeDateTest1": (
        "reject",
        "chain.issuer_expired",
        "4.2 validity periods: a CA certificate is outside its validity period",
    ),
    "InvalidDNSnameConstraintsTest31": (
        "reject",
        "chain.untrusted",
        "4.13 name constraints: RFC 5280 path validation refuses the path",
    ),
    "InvalidDNSnameConstraintsTest33": (
        "reject",
        "chain.untrusted",
        "4.13 name constraints: RFC 5280 path validation refuses the path",
    ),
    "InvalidDNSnameConstraintsTest38": (
        "reject",
        "chain.untrusted",
        "4.13 name constraints: RFC 5280 path validation refuses the path",
    ),
    "InvalidDNandRFC822nameConstraintsTest28": (
        "reject",
        "chain.untrusted",
        "4.13 name constraints: RFC 5280 path validation refuses the path",
    ),
    "InvalidDNandRFC822nameConstraintsTest29": (
        "reject",
        "chain.untrusted",
        "4.13 name constraints: RFC 5280 path validation refuses the path",
    ),
    "InvalidDNnameConstraintsTest10": (
        "reject",
        "chain.untrusted",
        "4.13 name constraints: RFC 5280 path validation refuses the path",
    ),
    "InvalidDNnameConstraintsTest12": (
        "reject",
        "chain.untrusted",
        "4.13 name constraints: RFC 5280 path validation refuses the path",
    ),
    "InvalidDNnameConstraintsTest13": (
        "reject",
        "chain.untrusted",
        "4.13 name constraints: RFC 5280 path validation refuses the path",
    ),
    "InvalidDNnameConstraintsTest15": (
        "reject",
        "chain.untrusted",
        "4.13 name constraints: RFC 5280 path validation refuses the path",
    ),
    "InvalidDNnameConstraintsTest16": (
        "reject",
        "chain.untrusted",
        "4.13 name constraints: RFC 5280 path validation refuses the path",
    ),
    "InvalidDNnameConstraintsTest17": (
        "reject",
        "chain.untrusted",
        "4.13 name constraints: RFC 5280 path validation refuses the path",
    ),
    "InvalidDNnameConstraintsTest2": (
        "reject",
        "chain.untrusted",
        "4.13 name constraints: RFC 5280 path validation refuses the path",
    ),
    "InvalidDNnameConstraintsTest20": (
        "reject",
        "chain.untrusted",
        "4.13 name constraints: RFC 5280 path validation refuses the path",
    ),
    "InvalidDNnameConstraintsTest3": (
        "reject",
        "chain.untrusted",
        "4.13 name constraints: RFC 5280 path validation refuses the path",
    ),
    "InvalidDNnameConstraintsTest7": (
        "reject",
        "chain.untrusted",
        "4.13 name constraints: RFC 5280 path validation refuses the path",
    ),
    "InvalidDNnameConstraintsTest8": (
        "reject",
        "chain.untrusted",
        "4.13 name constraints: RFC 5280 path validation refuses the path",
    ),
    "InvalidDNnameConstraintsTest9": (
        "reject",
        "chain.untrusted",
        "4.13 name constraints: RFC 5280 path validation refuses the path",
    ),
    "InvalidDSASignatureTest6": (
        "reject",
        "chain.bad_signature",
        "4.1 signature verification (DSA): a certificate is not signed by its issuer's key",
    ),
    "InvalidEESignatureTest3": (
        "reject",
        "chain.bad_signature",
        "4.1 signature verification: a certificate is not signed by its issuer's key",
    ),
    "InvalidEEnotAfterDateTest6": (
        "reject",
        "validity.expired",
        "4.2 validity periods: the leaf is expired",
    ),
    "InvalidEEnotBeforeDateTest2": (
        "reject",
        "chain.issuer_expired",
        "4.2 validity periods: a CA certificate is outside its validity period",
    ),
    "InvalidIDPwithindirectCRLTest23": (
        "reject",
        "revocation.revoked",
        "4.14 distribution points and issuing distribution points: a valid CRL of the path lists a certificate of the path",
    ),
    "InvalidIDPwithindirectCRLTest26": (
        "reject",
        "revocation.unavailable",
        "4.14 distribution points and issuing distribution points: no CRL that is valid for the certificate (signature, signer, scope, dates, critical extensions) establishes its status",
    ),
    "InvalidLongSerialNumberTest18": (
        "reject",
        "revocation.revoked",
        "4.4 basic CRL processing: a valid CRL of the path lists a certificate of the path",
    ),
    "InvalidMappingFromanyPolicyTest7": (
        "reject",
        "chain.untrusted",
        "4.8-4.12 certificate policies (default inputs): RFC 5280 path validation refuses the path",
    ),
    "InvalidMappingToanyPolicyTest8": (
        "reject",
        "chain.untrusted",
        "4.8-4.12 certificate policies (default inputs): RFC 5280 path validation refuses the path",
    ),
    "InvalidMissingCRLTest1": (
        "reject",
        "revocation.unavailable",
        "4.4 basic CRL processing: no CRL that is valid for the certificate (signature, signer, scope, dates, critical extensions) establishes its status",
    ),
    "InvalidMissingbasicConstraintsTest1": (
        "reject",
        "chain.untrusted",
        "4.6 basic constraints: RFC 5280 path validation refuses the path",
    ),
    "InvalidNameChainingOrderTest2": (
        "reject",
        "chain.untrusted",
        "4.3 name chaining (RFC 5280 7.1 comparison): RFC 5280 path validation refuses the path",
    ),
    "InvalidNameChainingTest1": (
        "reject",
        "chain.untrusted",
        "4.3 name chaining (RFC 5280 7.1 comparison): RFC 5280 path validation refuses the path",
    ),
    "InvalidNegativeSerialNumberTest15": (
        "reject",
        "revocation.revoked",
        "4.4 basic CRL processing: a valid CRL of the path lists a certificate of the path",
    ),
    "InvalidOldCRLnextUpdateTest11": (
        "reject",
        "revocation.unavailable",
        "4.4 basic CRL processing: no CRL that is valid for the certificate (signature, signer, scope, dates, critical extensions) establishes its status",
    ),
    "InvalidPolicyMappingTest10": (
        "reject",
        "chain.untrusted",
        "4.8-4.12 certificate policies (default inputs): RFC 5280 path validation refuses the path",
    ),
    "InvalidPolicyMappingTest2": (
        "reject",
        "chain.untrusted",
        "4.8-4.12 certificate policies (default inputs): RFC 5280 path validation refuses the path",
    ),
    "InvalidPolicyMappingTest4": (
        "reject",
        "chain.untrusted",
        "4.8-4.12 certificate policies (default inputs): RFC 5280 path validation refuses the path",
    ),
    "InvalidRFC822nameConstraintsTest22": (
        "reject",
        "chain.untrusted",
        "4.13 name constraints: RFC 5280 path validation refuses the path",
    ),
    "InvalidRFC822nameConstraintsTest24": (
        "reject",
        "chain.untrusted",
        "4.13 name constraints: RFC 5280 path validation refuses the path",
    ),
    "InvalidRFC822nameConstraintsTest26": (
        "reject",
        "chain.untrusted",
        "4.13 name constraints: RFC 5280 path validation refuses the path",
    ),
    "InvalidRevokedCATest2": (
        "reject",
        "revocation.revoked",
        "4.4 basic CRL processing: a valid CRL of the path lists a certificate of the path",
    ),
    "InvalidRevokedEETest3": (
        "reject",
        "revocation.revoked",
        "4.4 basic CRL processing: a valid CRL of the path lists a certificate of the path",
    ),
    "InvalidSelfIssuedinhibitAnyPolicyTest10": (
        "reject",
        "chain.untrusted",
        "self-issued certificates in policy and path-length processing: RFC 5280 path validation refuses the path",
    ),
    "InvalidSelfIssuedinhibitAnyPolicyTest8": (
        "reject",
        "chain.untrusted",
        "self-issued certificates in policy and path-length processing: RFC 5280 path validation refuses the path",
    ),
    "InvalidSelfIssuedinhibitPolicyMappingTest10": (
        "reject",
        "chain.untrusted",
        "self-issued certificates in policy and path-length processing: RFC 5280 path validation refuses the path",
    ),
    "InvalidSelfIssuedinhibitPolicyMappingTest11": (
        "reject",
        "chain.untrusted",
        "self-issued certificates in policy and path-length processing: RFC 5280 path validation refuses the path",
    ),
    "InvalidSelfIssuedinhibitPolicyMappingTest8": (
        "reject",
        "chain.untrusted",
        "self-issued certificates in policy and path-length processing: RFC 5280 path validation refuses the path",
    ),
    "InvalidSelfIssuedinhibitPolicyMappingTest9": (
        "reject",
        "chain.untrusted",
        "self-issued certificates in policy and path-length processing: RFC 5280 path validation refuses the path",
    ),
    "InvalidSelfIssuedpathLenConstraintTest16": (
        "reject",
        "chain.untrusted",
        "self-issued certificates in policy and path-length processing: RFC 5280 path validation refuses the path",
    ),
    "InvalidSelfIssuedrequireExplicitPolicyTest7": (
        "reject",
        "chain.untrusted",
        "self-issued certificates in policy and path-length processing: RFC 5280 path validation refuses the path",
    ),
    "InvalidSelfIssuedrequireExplicitPolicyTest8": (
        "reject",
        "chain.untrusted",
        "self-issued certificates in policy and path-length processing: RFC 5280 path validation refuses the path",
    ),
    "InvalidSeparateCertificateandCRLKeysTest20": (
        "reject",
        "revocation.revoked",
        "4.4 basic CRL processing: a valid CRL of the path lists a certificate of the path",
    ),
    "InvalidSeparateCertificateandCRLKeysTest21": (
        "reject",
        "revocation.unavailable",
        "4.4 basic CRL processing: no CRL that is valid for the certificate (signature, signer, scope, dates, critical extensions) establishes its status",
    ),
    "InvalidURInameConstraintsTest35": (
        "reject",
        "chain.untrusted",
        "4.13 name constraints: RFC 5280 path validation refuses the path",
    ),
    "InvalidURInameConstraintsTest37": (
        "reject",
        "chain.untrusted",
        "4.13 name constraints: RFC 5280 path validation refuses the path",
    ),
    "InvalidUnknownCRLEntryExtensionTest8": (
        "reject",
        "revocation.unavailable",
        "4.4 basic CRL processing: no CRL that is valid for the certificate (signature, signer, scope, dates, critical extensions) establishes its status",
    ),
    "InvalidUnknownCRLExtensionTest10": (
        "reject",
        "revocation.unavailable",
        "4.4 basic CRL processing: no CRL that is valid for the certificate (signature, signer, scope, dates, critical extensions) establishes its status",
    ),
    "InvalidUnknownCRLExtensionTest9": (
        "reject",
        "revocation.unavailable",
        "4.4 basic CRL processing: no CRL that is valid for the certificate (signature, signer, scope, dates, critical extensions) establishes its status",
    ),
    "InvalidUnknownCriticalCertificateExtensionTest2": (
        "reject",
        "chain.untrusted",
        "4.16 private certificate extensions: RFC 5280 path validation refuses the path",
    ),
    "InvalidWrongCRLTest6": (
        "reject",
        "revocation.unavailable",
        "4.4 basic CRL processing: no CRL that is valid for the certificate (signature, signer, scope, dates, critical extensions) establishes its status",
    ),
    "InvalidcAFalseTest2": (
        "reject",
        "chain.untrusted",
        "4.6 basic constraints: RFC 5280 path validation refuses the path",
    ),
    "InvalidcAFalseTest3": (
        "reject",
        "chain.untrusted",
        "4.6 basic constraints: RFC 5280 path validation refuses the path",
    ),
    "InvalidcRLIssuerTest27": (
        "reject",
        "revocation.unavailable",
        "4.14 distribution points and issuing distribution points: no CRL that is valid for the certificate (signature, signer, scope, dates, critical extensions) establishes its status",
    ),
    "InvalidcRLIssuerTest31": (
        "reject",
        "revocation.revoked",
        "4.14 distribution points and issuing distribution points: a valid CRL of the path lists a certificate of the path",
    ),
    "InvalidcRLIssuerTest32": (
        "reject",
        "revocation.revoked",
        "4.14 distribution points and issuing distribution points: a valid CRL of the path lists a certificate of the path",
    ),
    "InvalidcRLIssuerTest34": (
        "reject",
        "revocation.revoked",
        "4.14 distribution points and issuing distribution points: a valid CRL of the path lists a certificate of the path",
    ),
    "InvalidcRLIssuerTest35": (
        "reject",
        "revocation.unavailable",
        "4.14 distribution points and issuing distribution points: no CRL that is valid for the certificate (signature, signer, scope, dates, critical extensions) establishes its status",
    ),
    "InvaliddeltaCRLIndicatorNoBaseTest1": (
        "reject",
        "revocation.unavailable",
        "4.15 delta CRLs: no CRL that is valid for the certificate (signature, signer, scope, dates, critical extensions) establishes its status",
    ),
    "InvaliddeltaCRLTest10": (
        "reject",
        "revocation.unavailable",
        "4.15 delta CRLs: no CRL that is valid for the certificate (signature, signer, scope, dates, critical extensions) establishes its status",
    ),
    "InvaliddeltaCRLTest3": (
        "reject",
        "revocation.revoked",
        "4.15 delta CRLs: a valid CRL of the path lists a certificate of the path",
    ),
    "InvaliddeltaCRLTest4": (
        "reject",
        "revocation.revoked",
        "4.15 delta CRLs: a valid CRL of the path lists a certificate of the path",
    ),
    "InvaliddeltaCRLTest6": (
        "reject",
        "revocation.revoked",
        "4.15 delta CRLs: a valid CRL of the path lists a certificate of the path",
    ),
    "InvaliddeltaCRLTest9": (
        "reject",
        "revocation.revoked",
        "4.15 delta CRLs: a valid CRL of the path lists a certificate of the path",
    ),
    "InvaliddistributionPointTest2": (
        "reject",
        "revocation.revoked",
        "4.14 distribution points and issuing distribution points: a valid CRL of the path lists a certificate of the path",
    ),
    "InvaliddistributionPointTest3": (
        "reject",
        "revocation.unavailable",
        "4.14 distribution points and issuing distribution points: no CRL that is valid for the certificate (signature, signer, scope, dates, critical extensions) establishes its status",
    ),
    "InvaliddistributionPointTest6": (
        "reject",
        "revocation.revoked",
        "4.14 distribution points and issuing distribution points: a valid CRL of the path lists a certificate of the path",
    ),
    "InvaliddistributionPointTest8": (
        "reject",
        "revocation.unavailable",
        "4.14 distribution points and issuing distribution points: no CRL that is valid for the certificate (signature, signer, scope, dates, critical extensions) establishes its status",
    ),
    "InvaliddistributionPointTest9": (
        "reject",
        "revocation.unavailable",
        "4.14 distribution points and issuing distribution points: no CRL that is valid for the certificate (signature, signer, scope, dates, critical extensions) establishes its status",
    ),
    "InvalidinhibitAnyPolicyTest1": (
        "reject",
        "chain.untrusted",
        "4.8-4.12 certificate policies (default inputs): RFC 5280 path validation refuses the path",
    ),
    "InvalidinhibitAnyPolicyTest4": (
        "reject",
        "chain.untrusted",
        "4.8-4.12 certificate policies (default inputs): RFC 5280 path validation refuses the path",
    ),
    "InvalidinhibitAnyPolicyTest5": (
        "reject",
        "chain.untrusted",
        "4.8-4.12 certificate policies (default inputs): RFC 5280 path validation refuses the path",
    ),
    "InvalidinhibitAnyPolicyTest6": (
        "reject",
        "chain.untrusted",
        "4.8-4.12 certificate policies (default inputs): RFC 5280 path validation refuses the path",
    ),
    "InvalidinhibitPolicyMappingTest1": (
        "reject",
        "chain.untrusted",
        "4.8-4.12 certificate policies (default inputs): RFC 5280 path validation refuses the path",
    ),
    "InvalidinhibitPolicyMappingTest3": (
        "reject",
        "chain.untrusted",
        "4.8-4.12 certificate policies (default inputs): RFC 5280 path validation refuses the path",
    ),
    "InvalidinhibitPolicyMappingTest5": (
        "reject",
        "chain.untrusted",
        "4.8-4.12 certificate policies (default inputs): RFC 5280 path validation refuses the path",
    ),
    "InvalidinhibitPolicyMappingTest6": (
        "reject",
        "chain.untrusted",
        "4.8-4.12 certificate policies (default inputs): RFC 5280 path validation refuses the path",
    ),
    "InvalidkeyUsageCriticalcRLSignFalseTest4": (
        "reject",
        "revocation.unavailable",
        "4.7 key usage: no CRL that is valid for the certificate (signature, signer, scope, dates, critical extensions) establishes its status",
    ),
    "InvalidkeyUsageCriticalkeyCertSignFalseTest1": (
        "reject",
        "chain.untrusted",
        "4.7 key usage: RFC 5280 path validation refuses the path",
    ),
    "InvalidkeyUsageNotCriticalcRLSignFalseTest5": (
        "reject",
        "revocation.unavailable",
        "4.7 key usage: no CRL that is valid for the certificate (signature, signer, scope, dates, critical extensions) establishes its status",
    ),
    "InvalidkeyUsageNotCriticalkeyCertSignFalseTest2": (
        "reject",
        "chain.untrusted",
        "4.7 key usage: RFC 5280 path validation refuses the path",
    ),
    "InvalidonlyContainsAttributeCertsTest14": (
        "reject",
        "revocation.unavailable",
        "4.14 distribution points and issuing distribution points: no CRL that is valid for the certificate (signature, signer, scope, dates, critical extensions) establishes its status",
    ),
    "InvalidonlyContainsCACertsTest12": (
        "reject",
        "revocation.unavailable",
        "4.14 distribution points and issuing distribution points: no CRL that is valid for the certificate (signature, signer, scope, dates, critical extensions) establishes its status",
    ),
    "InvalidonlyContainsUserCertsTest11": (
        "reject",
        "revocation.unavailable",
        "4.14 distribution points and issuing distribution points: no CRL that is valid for the certificate (signature, signer, scope, dates, critical extensions) establishes its status",
    ),
    "InvalidonlySomeReasonsTest15": (
        "reject",
        "revocation.revoked",
        "4.14 distribution points and issuing distribution points: a valid CRL of the path lists a certificate of the path",
    ),
    "InvalidonlySomeReasonsTest16": (
        "reject",
        "revocation.revoked",
        "4.14 distribution points and issuing distribution points: a valid CRL of the path lists a certificate of the path",
    ),
    "InvalidonlySomeReasonsTest17": (
        "reject",
        "revocation.unavailable",
        "4.14 distribution points and issuing distribution points: no CRL that is valid for the certificate (signature, signer, scope, dates, critical extensions) establishes its status",
    ),
    "InvalidonlySomeReasonsTest20": (
        "reject",
        "revocation.revoked",
        "4.14 distribution points and issuing distribution points: a valid CRL of the path lists a certificate of the path",
    ),
    "InvalidonlySomeReasonsTest21": (
        "reject",
        "revocation.revoked",
        "4.14 distribution points and issuing distribution points: a valid CRL of the path lists a certificate of the path",
    ),
    "InvalidpathLenConstraintTest10": (
        "reject",
        "chain.untrusted",
        "4.6 basic constraints: RFC 5280 path validation refuses the path",
    ),
    "InvalidpathLenConstraintTest11": (
        "reject",
        "chain.untrusted",
        "4.6 basic constraints: RFC 5280 path validation refuses the path",
    ),
    "InvalidpathLenConstraintTest12": (
        "reject",
        "chain.untrusted",
        "4.6 basic constraints: RFC 5280 path validation refuses the path",
    ),
    "InvalidpathLenConstraintTest5": (
        "reject",
        "chain.untrusted",
        "4.6 basic constraints: RFC 5280 path validation refuses the path",
    ),
    "InvalidpathLenConstraintTest6": (
        "reject",
        "chain.untrusted",
        "4.6 basic constraints: RFC 5280 path validation refuses the path",
    ),
    "InvalidpathLenConstraintTest9": (
        "reject",
        "chain.untrusted",
        "4.6 basic constraints: RFC 5280 path validation refuses the path",
    ),
    "Invalidpre2000CRLnextUpdateTest12": (
        "reject",
        "revocation.unavailable",
        "4.4 basic CRL processing: no CRL that is valid for the certificate (signature, signer, scope, dates, critical extensions) establishes its status",
    ),
    "Invalidpre2000UTCEEnotAfterDateTest7": (
        "reject",
        "chain.issuer_expired",
        "4.2 validity periods: a CA certificate is outside its validity period",
    ),
    "InvalidrequireExplicitPolicyTest3": (
        "reject",
        "chain.untrusted",
        "4.8-4.12 certificate policies (default inputs): RFC 5280 path validation refuses the path",
    ),
    "InvalidrequireExplicitPolicyTest5": (
        "reject",
        "chain.untrusted",
        "4.8-4.12 certificate policies (default inputs): RFC 5280 path validation refuses the path",
    ),
    "ValidBasicSelfIssuedCRLSigningKeyTest6": (
        "accept",
        None,
        "4.5 self-issued key rollover certificates: a conforming path; its CRLs show nothing revoked",
    ),
    "ValidBasicSelfIssuedNewWithOldTest3": (
        "accept",
        None,
        "4.5 self-issued key rollover certificates: a conforming path; its CRLs show nothing revoked",
    ),
    "ValidBasicSelfIssuedNewWithOldTest4": (
        "accept",
        None,
        "4.5 self-issued key rollover certificates: a conforming path; its CRLs show nothing revoked",
    ),
    "ValidBasicSelfIssuedOldWithNewTest1": (
        "accept",
        None,
        "4.5 self-issued key rollover certificates: a conforming path; its CRLs show nothing revoked",
    ),
    "ValidCertificatePathTest1": (
        "accept",
        None,
        "4.8-4.12 certificate policies (default inputs): a conforming path; its CRLs show nothing revoked",
    ),
    "ValidDNSnameConstraintsTest30": (
        "accept",
        None,
        "4.13 name constraints: a conforming path; its CRLs show nothing revoked",
    ),
    "ValidDNSnameConstraintsTest32": (
        "accept",
        None,
        "4.13 name constraints: a conforming path; its CRLs show nothing revoked",
    ),
    "ValidDNandRFC822nameConstraintsTest27": (
        "accept",
        None,
        "4.13 name constraints: a conforming path; its CRLs show nothing revoked",
    ),
    "ValidDNnameConstraintsTest1": (
        "accept",
        None,
        "4.13 name constraints: a conforming path; its CRLs show nothing revoked",
    ),
    "ValidDNnameConstraintsTest11": (
        "accept",
        None,
        "4.13 name constraints: a conforming path; its CRLs show nothing revoked",
    ),
    "ValidDNnameConstraintsTest14": (
        "accept",
        None,
        "4.13 name constraints: a conforming path; its CRLs show nothing revoked",
    ),
    "ValidDNnameConstraintsTest18": (
        "accept",
        None,
        "4.13 name constraints: a conforming path; its CRLs show nothing revoked",
    ),
    "ValidDNnameConstraintsTest19": (
        "accept",
        None,
        "4.13 name constraints: a conforming path; its CRLs show nothing revoked",
    ),
    "ValidDNnameConstraintsTest4": (
        "accept",
        None,
        "4.13 name constraints: a conforming path; its CRLs show nothing revoked",
    ),
    "ValidDNnameConstraintsTest5": (
        "accept",
        None,
        "4.13 name constraints: a conforming path; its CRLs show nothing revoked",
    ),
    "ValidDNnameConstraintsTest6": (
        "accept",
        None,
        "4.13 name constraints: a conforming path; its CRLs show nothing revoked",
    ),
    "ValidDSAParameterInheritanceTest5": (
        "reject",
        None,
        "4.1 signature verification (DSA): known deviation: cryptography cannot parse a DSA key whose parameters are inherited (format.unreadable)",
    ),
    "ValidDSASignaturesTest4": (
        "reject",
        "revocation.unavailable",
        "4.1 signature verification (DSA): known deviation: the CRL is DSA-signed and its signature is not verified here, so the status stays unknown (accepted with a warning in soft mode)",
    ),
    "ValidGeneralizedTimeCRLnextUpdateTest13": (
        "accept",
        None,
        "4.4 basic CRL processing: a conforming path; its CRLs show nothing revoked",
    ),
    "ValidGeneralizedTimenotAfterDateTest8": (
        "accept",
        None,
        "4.2 validity periods: a conforming path; its CRLs show nothing revoked",
    ),
    "ValidGeneralizedTimenotBeforeDateTest4": (
        "accept",
        None,
        "4.2 validity periods: a conforming path; its CRLs show nothing revoked",
    ),
    "ValidIDPwithindirectCRLTest22": (
        "accept",
        None,
        "4.14 distribution points and issuing distribution points: a conforming path; its CRLs show nothing revoked",
    ),
    "ValidIDPwithindirectCRLTest24": (
        "accept",
        None,
        "4.14 distribution points and issuing distribution points: a conforming path; its CRLs show nothing revoked",
    ),
    "ValidIDPwithindirectCRLTest25": (
        "accept",
        None,
        "4.14 distribution points and issuing distribution points: a conforming path; its CRLs show nothing revoked",
    ),
    "ValidLongSerialNumberTest16": (
        "accept",
        None,
        "4.4 basic CRL processing: a conforming path; its CRLs show nothing revoked",
    ),
    "ValidLongSerialNumberTest17": (
        "accept",
        None,
        "4.4 basic CRL processing: a conforming path; its CRLs show nothing revoked",
    ),
    "ValidNameChainingCapitalizationTest5": (
        "accept",
        None,
        "4.3 name chaining (RFC 5280 7.1 comparison): a conforming path; its CRLs show nothing revoked",
    ),
    "ValidNameChainingWhitespaceTest3": (
        "accept",
        None,
        "4.3 name chaining (RFC 5280 7.1 comparison): a conforming path; its CRLs show nothing revoked",
    ),
    "ValidNameChainingWhitespaceTest4": (
        "accept",
        None,
        "4.3 name chaining (RFC 5280 7.1 comparison): a conforming path; its CRLs show nothing revoked",
    ),
    "ValidNameUIDsTest6": (
        "accept",
        None,
        "4.3 name chaining (RFC 5280 7.1 comparison): a conforming path; its CRLs show nothing revoked",
    ),
    "ValidNegativeSerialNumberTest14": (
        "accept",
        None,
        "4.4 basic CRL processing: a conforming path; its CRLs show nothing revoked",
    ),
    "ValidNoissuingDistributionPointTest10": (
        "accept",
        None,
        "4.14 distribution points and issuing distribution points: a conforming path; its CRLs show nothing revoked",
    ),
    "ValidPolicyMappingTest1": (
        "accept",
        None,
        "4.8-4.12 certificate policies (default inputs): a conforming path; its CRLs show nothing revoked",
    ),
    "ValidPolicyMappingTest11": (
        "accept",
        None,
        "4.8-4.12 certificate policies (default inputs): a conforming path; its CRLs show nothing revoked",
    ),
    "ValidPolicyMappingTest12": (
        "accept",
        None,
        "4.8-4.12 certificate policies (default inputs): a conforming path; its CRLs show nothing revoked",
    ),
    "ValidPolicyMappingTest13": (
        "accept",
        None,
        "4.8-4.12 certificate policies (default inputs): a conforming path; its CRLs show nothing revoked",
    ),
    "ValidPolicyMappingTest14": (
        "accept",
        None,
        "4.8-4.12 certificate policies (default inputs): a conforming path; its CRLs show nothing revoked",
    ),
    "ValidPolicyMappingTest3": (
        "accept",
        None,
        "4.8-4.12 certificate policies (default inputs): a conforming path; its CRLs show nothing revoked",
    ),
    "ValidPolicyMappingTest5": (
        "accept",
        None,
        "4.8-4.12 certificate policies (default inputs): a conforming path; its CRLs show nothing revoked",
    ),
    "ValidPolicyMappingTest6": (
        "accept",
        None,
        "4.8-4.12 certificate policies (default inputs): a conforming path; its CRLs show nothing revoked",
    ),
    "ValidPolicyMappingTest9": (
        "accept",
        None,
        "4.8-4.12 certificate policies (default inputs): a conforming path; its CRLs show nothing revoked",
    ),
    "ValidRFC3280MandatoryAttributeTypesTest7": (
        "accept",
        None,
        "4.3 name chaining (RFC 5280 7.1 comparison): a conforming path; its CRLs show nothing revoked",
    ),
    "ValidRFC3280OptionalAttributeTypesTest8": (
        "accept",
        None,
        "4.3 name chaining (RFC 5280 7.1 comparison): a conforming path; its CRLs show nothing revoked",
    ),
    "ValidRFC822nameConstraintsTest21": (
        "accept",
        None,
        "4.13 name constraints: a conforming path; its CRLs show nothing revoked",
    ),
    "ValidRFC822nameConstraintsTest23": (
        "accept",
        None,
        "4.13 name constraints: a conforming path; its CRLs show nothing revoked",
    ),
    "ValidRFC822nameConstraintsTest25": (
        "accept",
        None,
        "4.13 name constraints: a conforming path; its CRLs show nothing revoked",
    ),
    "ValidRolloverfromPrintableStringtoUTF8StringTest10": (
        "accept",
        None,
        "4.3 name chaining (RFC 5280 7.1 comparison): a conforming path; its CRLs show nothing revoked",
    ),
    "ValidSelfIssuedinhibitAnyPolicyTest7": (
        "accept",
        None,
        "self-issued certificates in policy and path-length processing: a conforming path; its CRLs show nothing revoked",
    ),
    "ValidSelfIssuedinhibitAnyPolicyTest9": (
        "accept",
        None,
        "self-issued certificates in policy and path-length processing: a conforming path; its CRLs show nothing revoked",
    ),
    "ValidSelfIssuedinhibitPolicyMappingTest7": (
        "accept",
        None,
        "self-issued certificates in policy and path-length processing: a conforming path; its CRLs show nothing revoked",
    ),
    "ValidSelfIssuedpathLenConstraintTest15": (
        "accept",
        None,
        "self-issued certificates in policy and path-length processing: a conforming path; its CRLs show nothing revoked",
    ),
    "ValidSelfIssuedpathLenConstraintTest17": (
        "accept",
        None,
        "self-issued certificates in policy and path-length processing: a conforming path; its CRLs show nothing revoked",
    ),
    "ValidSelfIssuedrequireExplicitPolicyTest6": (
        "accept",
        None,
        "self-issued certificates in policy and path-length processing: a conforming path; its CRLs show nothing revoked",
    ),
    "ValidSeparateCertificateandCRLKeysTest19": (
        "accept",
        None,
        "4.4 basic CRL processing: a conforming path; its CRLs show nothing revoked",
    ),
    "ValidTwoCRLsTest7": (
        "accept",
        None,
        "4.4 basic CRL processing: a conforming path; its CRLs show nothing revoked",
    ),
    "ValidURInameConstraintsTest34": (
        "accept",
        None,
        "4.13 name constraints: a conforming path; its CRLs show nothing revoked",
    ),
    "ValidURInameConstraintsTest36": (
        "accept",
        None,
        "4.13 name constraints: a conforming path; its CRLs show nothing revoked",
    ),
    "ValidUTF8StringCaseInsensitiveMatchTest11": (
        "accept",
        None,
        "4.3 name chaining (RFC 5280 7.1 comparison): a conforming path; its CRLs show nothing revoked",
    ),
    "ValidUTF8StringEncodedNamesTest9": (
        "accept",
        None,
        "4.3 name chaining (RFC 5280 7.1 comparison): a conforming path; its CRLs show nothing revoked",
    ),
    "ValidUnknownNotCriticalCertificateExtensionTest1": (
        "accept",
        None,
        "4.16 private certificate extensions: a conforming path; its CRLs show nothing revoked",
    ),
    "ValidbasicConstraintsNotCriticalTest4": (
        "accept",
        None,
        "4.6 basic constraints: a conforming path; its CRLs show nothing revoked",
    ),
    "ValidcRLIssuerTest28": (
        "accept",
        None,
        "4.14 distribution points and issuing distribution points: a conforming path; its CRLs show nothing revoked",
    ),
    "ValidcRLIssuerTest29": (
        "accept",
        None,
        "4.14 distribution points and issuing distribution points: a conforming path; its CRLs show nothing revoked",
    ),
    "ValidcRLIssuerTest30": (
        "accept",
        None,
        "4.14 distribution points and issuing distribution points: a conforming path; its CRLs show nothing revoked",
    ),
    "ValidcRLIssuerTest33": (
        "accept",
        None,
        "4.14 distribution points and issuing distribution points: a conforming path; its CRLs show nothing revoked",
    ),
    "ValiddeltaCRLTest2": (
        "accept",
        None,
        "4.15 delta CRLs: a conforming path; its CRLs show nothing revoked",
    ),
    "ValiddeltaCRLTest5": (
        "accept",
        None,
        "4.15 delta CRLs: a conforming path; its CRLs show nothing revoked",
    ),
    "ValiddeltaCRLTest7": (
        "accept",
        None,
        "4.15 delta CRLs: a conforming path; its CRLs show nothing revoked",
    ),
    "ValiddeltaCRLTest8": (
        "accept",
        None,
        "4.15 delta CRLs: a conforming path; its CRLs show nothing revoked",
    ),
    "ValiddistributionPointTest1": (
        "accept",
        None,
        "4.14 distribution points and issuing distribution points: a conforming path; its CRLs show nothing revoked",
    ),
    "ValiddistributionPointTest4": (
        "accept",
        None,
        "4.14 distribution points and issuing distribution points: a conforming path; its CRLs show nothing revoked",
    ),
    "ValiddistributionPointTest5": (
        "accept",
        None,
        "4.14 distribution points and issuing distribution points: a conforming path; its CRLs show nothing revoked",
    ),
    "ValiddistributionPointTest7": (
        "accept",
        None,
        "4.14 distribution points and issuing distribution points: a conforming path; its CRLs show nothing revoked",
    ),
    "ValidinhibitAnyPolicyTest2": (
        "accept",
        None,
        "4.8-4.12 certificate policies (default inputs): a conforming path; its CRLs show nothing revoked",
    ),
    "ValidinhibitPolicyMappingTest2": (
        "accept",
        None,
        "4.8-4.12 certificate policies (default inputs): a conforming path; its CRLs show nothing revoked",
    ),
    "ValidinhibitPolicyMappingTest4": (
        "accept",
        None,
        "4.8-4.12 certificate policies (default inputs): a conforming path; its CRLs show nothing revoked",
    ),
    "ValidkeyUsageNotCriticalTest3": (
        "accept",
        None,
        "4.7 key usage: a conforming path; its CRLs show nothing revoked",
    ),
    "ValidonlyContainsCACertsTest13": (
        "accept",
        None,
        "4.14 distribution points and issuing distribution points: a conforming path; its CRLs show nothing revoked",
    ),
    "ValidonlySomeReasonsTest18": (
        "accept",
        None,
        "4.14 distribution points and issuing distribution points: a conforming path; its CRLs show nothing revoked",
    ),
    "ValidonlySomeReasonsTest19": (
        "accept",
        None,
        "4.14 distribution points and issuing distribution points: a conforming path; its CRLs show nothing revoked",
    ),
    "ValidpathLenConstraintTest13": (
        "accept",
        None,
        "4.6 basic constraints: a conforming path; its CRLs show nothing revoked",
    ),
    "ValidpathLenConstraintTest14": (
        "accept",
        None,
        "4.6 basic constraints: a conforming path; its CRLs show nothing revoked",
    ),
    "ValidpathLenConstraintTest7": (
        "accept",
        None,
        "4.6 basic constraints: a conforming path; its CRLs show nothing revoked",
    ),
    "ValidpathLenConstraintTest8": (
        "accept",
        None,
        "4.6 basic constraints: a conforming path; its CRLs show nothing revoked",
    ),
    "Validpre2000UTCnotBeforeDateTest3": (
        "accept",
        None,
        "4.2 validity periods: a conforming path; its CRLs show nothing revoked",
    ),
    "ValidrequireExplicitPolicyTest1": (
        "accept",
        None,
        "4.8-4.12 certificate policies (default inputs): a conforming path; its CRLs show nothing revoked",
    ),
    "ValidrequireExplicitPolicyTest2": (
        "accept",
        None,
        "4.8-4.12 certificate policies (default inputs): a conforming path; its CRLs show nothing revoked",
    ),
    "ValidrequireExplicitPolicyTest4": (
        "accept",
        None,
        "4.8-4.12 certificate policies (default inputs): a conforming path; its CRLs show nothing revoked",
    ),
}
