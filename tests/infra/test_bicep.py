"""The deployment template (``infra/``), parsed with pycep-parser and checked against the code.

Cross-checks the app settings against ``rotation.config`` (through its public API only:
``Settings.from_env`` tells which settings it reads, which are required and whether values are
valid), and checks the security properties the deployment promises: least-privilege role
assignments at resource scope only, the Event Grid subscriptions' filter, retry and
dead-lettering, and local authentication off.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import azure.functions as func
import pytest

from devstack.pki import mint_certificate
from rotation.adapters.audit import AUDIT_FIELDS
from rotation.config import Settings, log_level_from_env, vault_urls_from_env
from rotation.config.values import LOCKS, ncrontab
from rotation.domain.errors import ConfigError
from rotation.entrypoints.functions import bp
from tests.infra.bicep import INFRA, ROOT, UNRESOLVED, Template, bicep_files, body, parse

VAULT_IDS = [
    "/subscriptions/11111111-1111-1111-1111-111111111111/resourceGroups/rg-kv-a/providers/Microsoft.KeyVault/vaults/kv-partner-a",
    "/subscriptions/22222222-2222-2222-2222-222222222222/resourceGroups/rg-kv-b/providers/Microsoft.KeyVault/vaults/kv-partner-b",
]
APIM_IDS = [
    "/subscriptions/11111111-1111-1111-1111-111111111111/resourceGroups/rg-apim/providers/Microsoft.ApiManagement/service/apim-prod",
]
ARGUMENTS = {
    "environmentName": "prod",
    "keyVaultResourceIds": VAULT_IDS,
    "apimServiceResourceIds": APIM_IDS,
}
# Settings the Functions host and the Azure SDK read (not certrotate's settings module).
HOST_SETTINGS = {
    "AzureWebJobsStorage__accountName",
    "AzureWebJobsStorage__credential",
    "AzureWebJobsStorage__clientId",
    "APPLICATIONINSIGHTS_CONNECTION_STRING",
    "APPLICATIONINSIGHTS_AUTHENTICATION_STRING",
}
ROLES = {
    "db79e9a7-68ee-4b58-9aeb-b90e7c24fcba": "Key Vault Certificate User",
    "4633458b-17de-408a-b874-0445c86b69e6": "Key Vault Secrets User",
    "ba92f5b4-2d11-453d-a403-e96b0029c9fe": "Storage Blob Data Contributor",
    "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3": "Storage Table Data Contributor",
    "3913510d-42f4-4e42-8a64-420c390055eb": "Monitoring Metrics Publisher",
    "d5a91429-5739-47e2-a06b-3470a27159e7": "EventGrid Data Sender",
}
FORBIDDEN_ROLES = {
    "8e3af657-a8ff-443c-a75c-2fe8c4bcb635": "Owner",
    "b24988ac-6180-42a0-ab88-20f7382dd24c": "Contributor",
    "18d7d88d-d35e-4fb5-a5c3-7773c20a72d9": "User Access Administrator",
    "f58310d9-a9f6-439a-9e8d-f62e7b41a168": "Role Based Access Control Administrator",
    "312a565d-c81f-4fd8-895a-4e21e48d571c": "API Management Service Contributor",
}
APIM_ACTIONS = {
    "Microsoft.ApiManagement/service/read",
    "Microsoft.ApiManagement/service/certificates/read",
    "Microsoft.ApiManagement/service/certificates/write",
    "Microsoft.ApiManagement/service/certificates/delete",
    "Microsoft.ApiManagement/service/certificates/refreshSecret/action",
    "Microsoft.ApiManagement/service/backends/read",
    "Microsoft.ApiManagement/service/backends/write",
}
NEW_VERSION = "Microsoft.KeyVault.CertificateNewVersionCreated"
# What Azure fills in at deployment time (resource properties), for the whole-environment test.
DEPLOYMENT_TIME = {
    "AzureWebJobsStorage__accountName": "stcrprod0000001",
    "AzureWebJobsStorage__clientId": "0f0e0d0c-0000-0000-0000-000000000001",
    "AZURE_CLIENT_ID": "0f0e0d0c-0000-0000-0000-000000000001",
    "APPLICATIONINSIGHTS_CONNECTION_STRING": "InstrumentationKey=00000000-0000-0000-0000-000000000000",
    "APPLICATIONINSIGHTS_AUTHENTICATION_STRING": "Authorization=AAD",
}


def _main(**overrides: Any) -> Template:
    return Template(INFRA / "main.bicep", {**ARGUMENTS, **overrides})


def _app_settings(template: Template) -> dict[str, Any]:
    module = template.modules["functionApp"]
    return template.evaluate(body(module)["params"]["appSettings"])


def _rotation_settings(template: Template) -> dict[str, str]:
    return {k: v for k, v in _app_settings(template).items() if k.startswith("ROTATION_")}


class _Recording(dict[str, str]):
    """A mapping that remembers every key the settings module asked for."""

    def __init__(self, values: Mapping[str, str]) -> None:
        super().__init__(values)
        self.asked: set[str] = set()

    def get(self, key: str, default: Any = None) -> Any:
        self.asked.add(key)
        return super().get(key, default)

    def __getitem__(self, key: str) -> str:
        self.asked.add(key)
        return super().__getitem__(key)

    def __contains__(self, key: object) -> bool:
        self.asked.add(str(key))
        return super().__contains__(key)


def _settings_read_by_the_code() -> set[str]:
    """Every setting name ``rotation.config`` reads (asked of a recording mapping)."""
    recording = _Recording({})
    with pytest.raises(ConfigError):
        Settings.from_env(recording)
    vault_urls_from_env(recording)
    log_level_from_env(recording)
    return recording.asked


@pytest.fixture(name="app_root")
def _app_root(tmp_path, monkeypatch) -> Path:
    """A stand-in app root holding a trust-anchor bundle at the template's default path."""
    root = mint_certificate("certrotate test root", ca=True)
    path = tmp_path / _main().evaluate("trustAnchorsPath")
    path.parent.mkdir(parents=True)
    path.write_bytes(root.pem)
    monkeypatch.setattr("rotation.config.settings.APP_ROOT", tmp_path)
    return tmp_path


def _deployed(**overrides: Any) -> dict[str, Any]:
    """The app settings as deployed: the template's, with what Azure fills in at deployment."""
    return {
        name: DEPLOYMENT_TIME.get(name, value) if value is UNRESOLVED else value
        for name, value in _app_settings(_main(**overrides)).items()
    }


class TestParsing:
    def test_every_bicep_file_parses(self):
        """pycep-parser reads every template (a syntax error would fail here, before Azure)."""
        parsed = {p.relative_to(INFRA).as_posix(): parse(p) for p in bicep_files()}

        assert "main.bicep" in parsed
        assert all("resources" in p or "modules" in p for p in parsed.values())

    def test_main_targets_a_resource_group_and_modules_only_resource_groups(self):
        """No subscription-, management-group- or tenant-scope deployment anywhere."""
        scopes = {p.name: parse(p)["globals"]["scope"]["value"] for p in bicep_files()}
        main = parse(INFRA / "main.bicep")
        module_scopes = [
            body(m)["scope"]["function"]["type"]
            for m in main["modules"].values()
            if "scope" in body(m)
        ]

        assert set(scopes.values()) == {"resourceGroup"}
        assert module_scopes == ["resource_group", "resource_group"]

    def test_every_module_reference_exists(self):
        """Each module path points at a file in infra/."""
        main = parse(INFRA / "main.bicep")

        paths = {m["detail"]["path"] for m in main["modules"].values()}

        assert all((INFRA / p).is_file() for p in paths)


class TestAppSettings:
    def test_settings_are_valid_for_the_settings_module(self, app_root):
        """Every ROTATION_* value, as deployed, passes Settings.from_env; the trust anchors are
        read relative to the app root."""
        parsed = Settings.from_env(_deployed())

        assert _rotation_settings(_main())["ROTATION_LOCK"] in LOCKS
        assert parsed.trust_anchors == app_root / _main().evaluate("trustAnchorsPath")
        assert parsed.vaults == (
            "https://kv-partner-a.vault.azure.net",
            "https://kv-partner-b.vault.azure.net",
        )
        assert parsed.apim_services == tuple(APIM_IDS)
        assert parsed.audit_table == "certrotateaudit"
        assert parsed.lock_container == "certrotate-locks"
        assert parsed.arm_endpoint == "https://management.azure.com"

    def test_whole_deployed_environment_is_accepted(self, app_root):
        """With the host's identity-based AzureWebJobsStorage__* only, the lock (ROTATION_LOCK=blob)
        and the audit table get a connection: the settings are accepted as deployed."""
        parsed = Settings.from_env(_deployed())
        account = DEPLOYMENT_TIME["AzureWebJobsStorage__accountName"]

        assert parsed.lock == "blob"
        assert parsed.lock_connection is not None
        assert (
            parsed.lock_connection.blob_service_uri == f"https://{account}.blob.core.windows.net"
        )
        assert parsed.audit_connection is not None
        assert (parsed.audit_connection.credential, parsed.audit_connection.client_id) == (
            "managedidentity",
            DEPLOYMENT_TIME["AzureWebJobsStorage__clientId"],
        )
        assert parsed.audit_connection.table_service_uri == (
            f"https://{account}.table.core.windows.net"
        )

    def test_no_required_setting_is_missing(self):
        """Every setting Settings.from_env reports as required is in the template."""
        with pytest.raises(ConfigError) as exc:
            Settings.from_env({})
        required = {p.split(":")[0] for p in exc.value.problems if "required but not set" in p}

        assert required
        assert required <= set(_app_settings(_main()))

    def test_no_unknown_rotation_setting(self):
        """Every ROTATION_* name in the template is one the settings module reads."""
        known = _settings_read_by_the_code()
        in_template = {k for k in _app_settings(_main()) if k.startswith("ROTATION_")}

        assert "ROTATION_VAULTS" in known
        assert in_template - known == set()

    def test_other_settings_are_exactly_the_hosts_and_the_sdks(self):
        """Besides ROTATION_*: host storage and telemetry, and AZURE_CLIENT_ID, nothing else.

        Flex Consumption refuses FUNCTIONS_WORKER_RUNTIME/FUNCTIONS_EXTENSION_VERSION as app
        settings (the runtime is in functionAppConfig), and no setting holds a key.
        """
        names = set(_app_settings(_main()))
        other = {n for n in names if not n.startswith("ROTATION_")}

        assert other == HOST_SETTINGS | {"AZURE_CLIENT_ID"}
        assert "AZURE_CLIENT_ID" in _settings_read_by_the_code()
        assert (
            not {"AzureWebJobsStorage", "FUNCTIONS_WORKER_RUNTIME", "FUNCTIONS_EXTENSION_VERSION"}
            & names
        )

    def test_storage_connection_is_identity_based(self):
        """Host storage uses the user-assigned identity; nothing names a key or a SAS."""
        settings = _app_settings(_main())

        assert settings["AzureWebJobsStorage__credential"] == "managedidentity"
        assert settings["AzureWebJobsStorage__clientId"] is UNRESOLVED  # the identity's client id
        text = (INFRA / "main.bicep").read_text() + "".join(p.read_text() for p in bicep_files())
        assert "listKeys" not in text
        assert "AccountKey" not in text

    @pytest.mark.parametrize(
        "minutes", _main().parameters["reconcilePeriodMinutes"]["decorators"][0]["argument"]
    )
    def test_reconcile_schedule_is_valid_for_every_allowed_period(self, minutes):
        """The derived NCRONTAB is 6 fields and fires at an even period of ``minutes``."""
        schedule = _app_settings(_main(reconcilePeriodMinutes=minutes))[
            "ROTATION_RECONCILE_SCHEDULE"
        ]

        fields = ncrontab(schedule).split()

        assert fields[0] == "0"
        if minutes < 60:
            assert fields[1] == f"*/{minutes}"
            assert 60 % minutes == 0
        else:
            assert fields[1:3] == ["0", f"*/{minutes // 60}"]
            assert 24 % (minutes // 60) == 0

    def test_setting_values_follow_the_parameters(self, app_root):
        """Parameters reach the settings with valid spellings (booleans, choices, days)."""
        parsed = Settings.from_env(
            _deployed(strategy="blue-green", dryRun=True, alertDays=21, revocation="hard")
        )

        assert (
            parsed.strategy.value,
            parsed.dry_run,
            parsed.near_expiry_days,
            parsed.revocation,
        ) == (
            "blue-green",
            True,
            21,
            "hard",
        )


def _role_assignments() -> Iterator[tuple[Path, str, dict[str, Any], Template]]:
    for path in bicep_files():
        if path.name == "main.bicep":
            continue
        arguments = {
            n: "x" for n, p in parse(path)["parameters"].items() if p.get("default") is None
        }
        template = Template(path, arguments)
        for name, resource in template.resources_of_type(
            "Microsoft.Authorization/roleAssignments"
        ).items():
            yield path, name, resource, template


class TestRoleAssignments:
    def test_no_owner_contributor_or_access_admin_role_anywhere(self):
        """No file mentions a forbidden built-in role's id."""
        text = "\n".join(p.read_text() for p in bicep_files()).lower()

        assert [n for guid, n in FORBIDDEN_ROLES.items() if guid in text] == []

    def test_each_assignment_is_scoped_to_one_resource_of_its_file(self):
        """Every assignment names a resource declared in its module as its scope (never the
        subscription or the resource group as a whole)."""
        scopes = {
            (path.name, name): resource.get("scope")
            for path, name, resource, _ in _role_assignments()
        }

        assert len(scopes) >= 8
        for (file, name), scope in scopes.items():
            resources = parse(INFRA / "modules" / file)["resources"]
            assert scope in resources, f"{file}:{name} has scope {scope!r}"
            assert resources[scope]["type"] != "Microsoft.Authorization/roleAssignments"

    def test_roles_used_are_exactly_the_least_privilege_set(self):
        """Built-in roles: data-plane or publisher roles only; APIM gets the custom role."""
        used: dict[str, set[str]] = {}
        custom = set()
        for path, name, resource, template in _role_assignments():
            definition = resource["properties"]["roleDefinitionId"]["function"]["parameters"][
                "resource_name_1"
            ]
            value = template.evaluate(definition)
            if path.name == "apim.bicep":
                custom.add(name)
                continue
            used.setdefault(value, set()).add(f"{path.name}:{name}")

        assert set(used) == set(ROLES)
        assert custom == {"assignment"}

    def test_apim_custom_role_is_limited_to_what_certrotate_calls(self):
        """Read the service, CRUD certificates + refreshSecret, read/write backends; policies
        only when asked for; no wildcard, no data actions; assignable in its resource group."""
        apim = INFRA / "modules" / "apim.bicep"
        for policy_access, extra in ((False, set()), (True, {"policies"})):
            template = Template(
                apim,
                {"serviceName": "apim-prod", "principalId": "p", "policyAccess": policy_access},
            )
            role = template.resources_of_type("Microsoft.Authorization/roleDefinitions")["role"]
            permissions = template.evaluate(role["properties"]["permissions"])
            actions = set(permissions[0]["actions"])

            assert actions >= APIM_ACTIONS
            assert {a.split("/")[-2] for a in actions - APIM_ACTIONS} <= extra | {
                "apis",
                "operations",
            }
            assert bool(actions - APIM_ACTIONS) is policy_access
            assert not any("*" in a for a in actions)
            assert permissions[0]["dataActions"] == []
            assert role["properties"]["assignableScopes"] == [
                {
                    "operator": {
                        "type": "property_accessor",
                        "operands": {
                            "operand_1": {
                                "function": {
                                    "type": "resource_group",
                                    "parameters": {
                                        "resource_group_name": None,
                                        "subscription_id": None,
                                    },
                                }
                            },
                            "operand_2": "id",
                        },
                    }
                }
            ]

    def test_apim_principals_get_secrets_user_on_each_vault(self):
        """The documented parameter: APIM's own identities read the vault's secrets."""
        template = Template(
            INFRA / "modules" / "vault.bicep",
            dict.fromkeys(parse(INFRA / "modules" / "vault.bicep")["parameters"], "x"),
        )
        resource = template.resources["apimSecretsUser"]

        assert resource["config"]["loop_type"]["detail"]["array_name"] == "apimPrincipalIds"
        assert "apimPrincipalIds" in parse(INFRA / "main.bicep")["parameters"]


def _event_subscriptions() -> dict[str, dict[str, Any]]:
    found = {}
    for path in bicep_files():
        for name, resource in parse(path).get("resources", {}).items():
            if resource["type"].endswith("/eventSubscriptions"):
                found[f"{path.name}:{name}"] = body(resource)
    return found


class TestEventSubscriptions:
    def test_vault_and_replay_subscriptions_exist(self):
        """One per vault's system topic, one on the optional replay topic."""
        assert set(_event_subscriptions()) == {
            "vault.bicep:subscription",
            "replay.bicep:subscription",
        }

    def test_filter_is_exactly_new_version_created(self):
        """includedEventTypes is exactly CertificateNewVersionCreated, nothing else filtered in."""
        for where, subscription in _event_subscriptions().items():
            assert subscription["properties"]["filter"] == {"includedEventTypes": [NEW_VERSION]}, (
                where
            )

    def test_endpoint_is_the_registered_function(self):
        """AzureFunction endpoint; main passes {site}/functions/on_key_vault_event, a function
        the app really registers."""
        main = _main()
        app = func.FunctionApp()
        app.register_functions(bp)
        registered = {f.get_function_name() for f in app.get_functions()}

        for subscription in _event_subscriptions().values():
            destination = subscription["properties"]["destination"]
            assert destination["endpointType"] == "AzureFunction"
            assert destination["properties"]["resourceId"] == "functionResourceId"
        for module in ("vaults", "replay"):
            target = body(main.modules[module])["params"]["functionResourceId"]
            assert target.endswith("/functions/${functionName}")
        assert main.evaluate("functionName") in registered

    def test_retry_and_dead_letter_with_the_identity(self):
        """Explicit retry policy; dead letters to blob storage with the user-assigned identity
        (never a key-based deadLetterDestination); both subscriptions identical in that."""
        shapes = []
        for where, subscription in _event_subscriptions().items():
            properties = subscription["properties"]
            assert set(properties["retryPolicy"]) == {
                "maxDeliveryAttempts",
                "eventTimeToLiveInMinutes",
            }, where
            assert "deadLetterDestination" not in properties, where
            dead_letter = properties["deadLetterWithResourceIdentity"]
            assert dead_letter["identity"]["type"] == "UserAssigned"
            assert dead_letter["deadLetterDestination"]["endpointType"] == "StorageBlob"
            shapes.append(
                json.dumps(
                    [properties["retryPolicy"], dead_letter, properties["filter"]], sort_keys=True
                )
            )

        assert len(set(shapes)) == 1

    def test_retry_bounds_are_event_grids(self):
        """Delivery attempts 1-30 and TTL 1-1440 minutes, as Event Grid allows."""
        parameters = parse(INFRA / "main.bicep")["parameters"]

        bounds = {
            name: {
                d["type"]: d["argument"]
                for d in parameters[name]["decorators"]
                if d["type"] in {"min_value", "max_value"}
            }
            for name in ("maxDeliveryAttempts", "eventTimeToLiveInMinutes")
        }

        assert bounds == {
            "maxDeliveryAttempts": {"min_value": 1, "max_value": 30},
            "eventTimeToLiveInMinutes": {"min_value": 1, "max_value": 1440},
        }


class TestHardening:
    def _resource(self, file: str, kind: str) -> dict[str, Any]:
        path = INFRA / "modules" / file
        template = Template(path, dict.fromkeys(parse(path)["parameters"], "x"))
        (resource,) = template.resources_of_type(kind).values()
        return resource

    def test_storage_has_no_shared_keys_and_anchors_are_write_once(self):
        """Shared-key access off; the audit-anchors container carries a time-based policy."""
        account = self._resource("storage.bicep", "Microsoft.Storage/storageAccounts")
        policy = self._resource(
            "storage.bicep",
            "Microsoft.Storage/storageAccounts/blobServices/containers/immutabilityPolicies",
        )
        storage = Template(
            INFRA / "modules" / "storage.bicep",
            {
                **dict.fromkeys(parse(INFRA / "modules" / "storage.bicep")["parameters"], "x"),
                "containers": _main().evaluate("containers"),
            },
        )
        container = body(storage.resources[policy["parent"]])

        assert account["properties"]["allowSharedKeyAccess"] is False
        assert account["properties"]["allowBlobPublicAccess"] is False
        assert storage.evaluate(container["name"]) == "audit-anchors"
        assert set(policy["properties"]) == {
            "immutabilityPeriodSinceCreationInDays",
            "allowProtectedAppendWrites",
        }

    def test_local_auth_is_disabled_for_telemetry_and_the_replay_topic(self):
        """App Insights, Log Analytics and the replay topic accept Entra tokens only."""
        insights = self._resource("monitoring.bicep", "Microsoft.Insights/components")
        workspace = self._resource("monitoring.bicep", "Microsoft.OperationalInsights/workspaces")
        topic = self._resource("replay.bicep", "Microsoft.EventGrid/topics")

        assert insights["properties"]["DisableLocalAuth"] is True
        assert workspace["properties"]["features"]["disableLocalAuth"] is True
        assert topic["properties"]["disableLocalAuth"] is True

    def test_function_app_is_flex_consumption_python_311_with_one_identity(self):
        """FC1 plan, python 3.11, user-assigned identity for the app and its package."""
        plan = self._resource("functionapp.bicep", "Microsoft.Web/serverfarms")
        site = self._resource("functionapp.bicep", "Microsoft.Web/sites")
        config = site["properties"]["functionAppConfig"]

        assert plan["sku"] == {"name": "FC1", "tier": "FlexConsumption"}
        assert config["runtime"] == {"name": "python", "version": "3.11"}
        assert site["identity"]["type"] == "UserAssigned"
        assert config["deployment"]["storage"]["authentication"]["type"] == "UserAssignedIdentity"

    def test_alert_rules_cover_the_five_conditions(self):
        """failed, rejected, expiring within alertDays, reconcile stale (log rules) and
        dead-lettered events (metric rule on each topic)."""
        template = Template(
            INFRA / "modules" / "alerts.bicep",
            {
                "token": "t",
                "location": "l",
                "tags": {},
                "appInsightsId": "a",
                "actionGroupId": "",
                "alertDays": 21,
                "reconcilePeriodMinutes": 30,
            },
        )
        rules = {r["name"]: r for r in template.evaluate("rules")}
        metric = [
            body(r)["properties"]["criteria"]["allOf"][0]["metricName"]
            for f in ("vault.bicep", "replay.bicep")
            for r in parse(INFRA / "modules" / f)["resources"].values()
            if r["type"] == "Microsoft.Insights/metricAlerts"
        ]

        assert set(rules) == {"failed", "rejected", "expiring", "reconcile-stale"}
        assert 'tostring(r.decision) == "failed"' in rules["failed"]["query"]
        assert rules["failed"]["windowSize"] == "PT1H"
        assert 'tostring(r.decision) == "rejected"' in rules["rejected"]["query"]
        assert "now() + 21d" in rules["expiring"]["query"]
        assert "ago(60m)" in rules["reconcile-stale"]["query"]
        assert metric == ["DeadLetteredCount", "DeadLetteredCount"]

    def test_alert_queries_use_the_audit_record_fields(self):
        """The fields the KQL reads are fields every audit record carries (rotation.audit)."""
        template = Template(
            INFRA / "modules" / "alerts.bicep",
            {
                "token": "t",
                "location": "l",
                "tags": {},
                "appInsightsId": "a",
                "actionGroupId": "",
                "alertDays": 30,
                "reconcilePeriodMinutes": 30,
            },
        )
        queries = " ".join(r["query"] for r in template.evaluate("rules"))
        fields = set(re.findall(r"\br\.(\w+)", queries))

        assert fields - {"audit", "error"} <= set(AUDIT_FIELDS)

    def test_every_checkov_skip_gives_a_reason(self):
        """Skips are inline at the resource, each with a reason of a sentence or more."""
        skips = [
            line.strip()
            for path in bicep_files()
            for line in path.read_text().splitlines()
            if "checkov:skip" in line
        ]

        assert skips
        assert all(re.fullmatch(r"#checkov:skip=CKV2?_AZURE_\d+:.{40,}", s) for s in skips), skips


def test_azure_yaml_deploys_the_repo_root_as_a_python_function():
    """azd: one service, the repo root, Python on Functions; infra from infra/main.bicep."""
    text = (ROOT / "azure.yaml").read_text()

    assert re.search(
        r"^services:\n  certrotate:\n    project: \.\n    language: python\n    host: function$",
        text,
        re.MULTILINE,
    )
    assert "path: infra" in text
    assert "azd-service-name': 'certrotate'" in (INFRA / "main.bicep").read_text()
