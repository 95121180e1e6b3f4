"""``DevstackState``: SQLite persistence of what changed, list views, the legacy ``state.json``."""

from __future__ import annotations

import json
import ssl
from typing import Any, TypeVar

import httpx
import pytest

from devstack.bundles import PKCS12, parse_bundle
from devstack.stack import Devstack
from devstack.state import DATABASE_FILE, DevstackState, Entity

T = TypeVar("T")
API = {"api-version": "2024-05-01"}
SERVICE = "apim-a"


def _service(state: Any, name: str) -> Any:
    """The stand-in's service ``name``, which the test has created."""
    return _present(state.service(name))


def _present(value: T | None) -> T:
    assert value is not None
    return value


def _backend(url: str = "https://x.test") -> dict[str, Any]:
    return {"url": url, "protocol": "http", "credentials": {"certificateIds": []}}


def _fill(state: DevstackState, n: int) -> None:
    svc = state.ensure_service(SERVICE)
    for i in range(n):
        svc.backends[f"b{i}"] = Entity(f"B{i}", _backend(), state.next_etag())


def _client(stack: Devstack) -> httpx.Client:
    return httpx.Client(verify=ssl.create_default_context(cafile=str(stack.ca_bundle)))


def _reopen(state: DevstackState, directory) -> DevstackState:
    state.close()
    return DevstackState(directory)


class TestWritesCostWhatChanged:
    def test_a_save_writes_only_the_changed_rows(self, tmp_path):
        """After 500 backends are saved, changing one writes that row and the ETag counter."""
        state = DevstackState(tmp_path)
        _fill(state, 500)
        state.save()
        assert state.saved_rows >= 500

        svc = _service(state, SERVICE)
        svc.backends["b7"].etag = state.next_etag()
        state.save()

        assert state.saved_rows == 2  # the backend and the meta row
        state.save()
        assert state.saved_rows == 1  # nothing changed: the meta row only
        state.close()

    def test_every_kind_of_change_survives_a_reopen(self, tmp_path, devstack_pki):
        """Replace, in-place edit, delete, new service, Key Vault import and update all persist;
        list order (insertion order, a replaced entity keeps its place) is kept."""
        state = DevstackState(tmp_path)
        _fill(state, 4)
        state.save()
        svc = _service(state, SERVICE)
        svc.backends["b1"] = Entity("B1", _backend("https://replaced.test"), state.next_etag())
        svc.backends["b2"].properties = _backend("https://patched.test")
        del svc.backends["b0"]
        svc.backends["b9"] = Entity("B9", _backend(), state.next_etag())
        state.ensure_service("apim-b")
        bundle = parse_bundle(devstack_pki.pfx())
        entry = state.kv.add_version("Cert", bundle, content_type=PKCS12)
        entry.enabled = False
        state.kv.touch(entry)
        etag = state.next_etag()

        again = _reopen(state, tmp_path)

        backends = _service(again, SERVICE).backends
        assert list(backends) == ["b1", "b2", "b3", "b9"]
        assert backends["b1"].properties["url"] == "https://replaced.test"
        assert backends["b2"].properties["url"] == "https://patched.test"
        assert _service(again, "apim-b").policies[""].name == "policy"
        assert _present(again.kv.get("cert", entry.version)).enabled is False
        assert again.kv.policies["cert"] == PKCS12
        assert again.next_etag() != etag  # the counter moved on, no ETag is reused
        again.close()

    def test_http_writes_persist_without_a_full_save(self, tmp_path):
        """A PATCH through the ARM stand-in is on disk when the response arrives."""
        with Devstack.start(tmp_path, ephemeral=False) as stack, _client(stack) as http:
            svc = stack.apim_services[0]
            for i in range(300):
                stack.put_backend(svc, f"b{i}", url="https://x.test", certificate_ids=[])
            stack.state.save()  # direct seeding is saved by the next save (here, or a write)
            url = f"{stack.arm_endpoint}{stack.service_id(svc)}/backends/b5"
            auth = {"Authorization": f"Bearer {stack.token}"}
            etag = http.get(url, params=API, headers=auth).headers["ETag"]
            patched = http.patch(
                url,
                params=API,
                headers={**auth, "If-Match": etag},
                json={"properties": {"url": "https://moved.test"}},
            )
            assert patched.status_code == 200
            # the PATCH's save wrote its backend and the ETag counter, nothing else
            assert stack.state.saved_rows == 2
            reader = DevstackState(tmp_path)
            assert _service(reader, svc).backends["b5"].properties["url"] == "https://moved.test"
            assert len(_service(reader, svc).backends) == 300
            reader.close()

    def test_ephemeral_state_has_no_database(self, tmp_path):
        """Without a directory nothing is recorded or written."""
        state = DevstackState(None)
        _fill(state, 3)
        state.save()
        state.close()
        assert not (tmp_path / DATABASE_FILE).exists()
        assert state.saved_rows == 0


class TestLegacyStateJson:
    def test_an_old_state_json_is_imported_once(self, tmp_path):
        """A ``state.json`` of an older devstack is taken over, then renamed."""
        legacy = {
            "etag_counter": 41,
            "kv": {"certificates": {}, "policies": {}},
            "services": {
                "apim-old": {
                    "name": "apim-old",
                    "certificates": [],
                    "backends": [{"name": "Api", "properties": _backend(), "etag": '"e"'}],
                    "policies": {"": {"name": "policy", "properties": {}, "etag": '"p"'}},
                }
            },
        }
        (tmp_path / "state.json").write_text(json.dumps(legacy))

        state = DevstackState(tmp_path)
        state.close()
        again = DevstackState(tmp_path)

        assert _service(again, "apim-old").backends["api"].etag == '"e"'
        assert _service(again, "apim-old").backends["api"].name == "Api"
        assert not (tmp_path / "state.json").exists()
        assert (tmp_path / "state.json.imported").exists()
        again.close()


@pytest.fixture(name="lister")
def _lister(devstack, devstack_http):
    def get(params: dict[str, Any]) -> httpx.Response:
        svc = devstack.apim_services[0]
        url = f"{devstack.arm_endpoint}{devstack.service_id(svc)}/backends"
        return devstack_http.get(
            url,
            params={**API, **params},
            headers={"Authorization": f"Bearer {devstack.token}"},
        )

    return get


class TestListViews:
    def test_pages_follow_writes_made_between_them(self, devstack, lister):
        """A listing's view is reused between pages, but a write in between is seen."""
        svc = devstack.apim_services[0]
        for i in range(250):
            devstack.put_backend(svc, f"b{i:03d}", url="https://x.test", certificate_ids=[])
        first = lister({"$top": "100"}).json()
        devstack.put_backend(svc, "b999", url="https://x.test", certificate_ids=[])
        last = lister({"$top": "100", "$skip": "200"}).json()

        assert first["count"] == 250
        assert last["count"] == 251
        assert [b["name"] for b in last["value"]][-1] == "b999"
        assert "nextLink" not in last

    def test_a_filtered_view_sees_a_changed_property(self, devstack, lister):
        """Editing an entity in place (as PATCH does) invalidates the filtered view."""
        svc = devstack.apim_services[0]
        for i in range(5):
            devstack.put_backend(svc, f"b{i}", url="https://x.test", certificate_ids=[])
        query = {"$filter": "contains(url, 'moved')"}
        assert lister(query).json()["count"] == 0

        backend = _service(devstack.state, svc).backends["b3"]
        backend.properties = {**backend.properties, "url": "https://moved.test"}

        moved = lister(query).json()
        assert [b["name"] for b in moved["value"]] == ["b3"]
