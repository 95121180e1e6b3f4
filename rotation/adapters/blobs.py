"""Read Event Grid dead-letter blobs from Blob Storage (Azure or Azurite) for ``certrotate replay``.

Event Grid writes each dead-lettered delivery as one blob,
``{container}/{SUBSCRIPTION-NAME}/{YYYY}/{M}/{D}/{H}/{guid}.json``, holding a JSON array of one or
more events with ``deadLetterReason``/``deliveryAttempts``/... added. This adapter lists the
blobs under a prefix (page by page, so a large container never sits in memory), downloads one blob
at a time into a temporary file and streams it through the intake (``rotation.intake.events``), which
normalises each event.

It is the only code that knows ``azure.storage.blob``; SDK errors become the domain's
``DependencyError`` family (``rotation.adapters.errors.translate``), built from status codes and
names only (never the connection string).
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

from azure.core.exceptions import AzureError
from azure.storage.blob import ContainerClient

from rotation.adapters.errors import DEAD_LETTERS, translate
from rotation.domain.errors import DependencyError, InvalidEventError
from rotation.domain.model import KeyVaultEvent
from rotation.intake.events import iter_file_events

__all__ = ["DeadLetterBlobSource"]

_SERVICE = DEAD_LETTERS.name
_SPOOL = "blob.json"


class DeadLetterBlobSource:
    """Event Grid dead-letter blobs in one container, read in name order under a prefix.

    Build it with ``from_connection_string`` (the connection string is kept only inside the SDK
    client) or hand it a ready ``ContainerClient``.
    """

    def __init__(self, container: ContainerClient) -> None:
        self._container = container

    @classmethod
    def from_connection_string(
        cls, connection_string: str, container: str
    ) -> DeadLetterBlobSource:
        """A source for ``container`` in the storage account named by ``connection_string``.

        Raises:
            DependencyError: the connection string cannot be parsed (its value is not echoed).
        """
        try:
            client = ContainerClient.from_connection_string(connection_string, container)
        except ValueError as exc:
            raise DependencyError(
                "the storage connection string is blank or malformed",
                service=_SERVICE,
                operation="connect",
            ) from exc
        return cls(client)

    @property
    def container_name(self) -> str:
        """The container's name."""
        return str(self._container.container_name)

    def __repr__(self) -> str:
        return f"DeadLetterBlobSource(container={self.container_name!r})"

    def list_blob_names(self, prefix: str = "") -> Iterator[str]:
        """The names of the ``.json`` blobs under ``prefix`` (all pages, lazily).

        Raises:
            DependencyError: the container is missing or the listing failed (see ``rotation.adapters.errors``).
        """
        try:
            for blob in self._container.list_blobs(name_starts_with=prefix or None):
                name = str(blob.name)
                if name.lower().endswith(".json"):
                    yield name
        except AzureError as exc:
            raise translate(
                exc, service=DEAD_LETTERS, operation="list_blobs", name=self.container_name
            ) from exc

    def download(self, name: str, stream: BinaryIO) -> None:
        """Write the bytes of blob ``name`` to ``stream`` (chunked by the SDK).

        Raises:
            DependencyError: the blob is gone or the download failed.
        """
        try:
            self._container.download_blob(name).readinto(stream)
        except AzureError as exc:
            where = f"{self.container_name}/{name}"
            raise translate(
                exc, service=DEAD_LETTERS, operation="download_blob", name=where
            ) from exc

    def iter_events(
        self, prefix: str = "", *, allowed_vault_urls: Iterable[str] = ()
    ) -> Iterator[tuple[str, KeyVaultEvent | InvalidEventError]]:
        """Every event in every dead-letter blob under ``prefix``, in constant memory.

        Each blob is spooled to a temporary file and streamed by the same reader as
        ``certrotate replay FILE`` (``iter_file_events``), so a blob is read exactly like a
        dead-letter file saved by hand. Yields ``(location, event_or_error)`` with locations like
        ``{container}/{blob}[3]``; a malformed event is yielded as its ``InvalidEventError``.

        Raises:
            DependencyError: listing or downloading failed (Storage unreachable, no container).
        """
        with tempfile.TemporaryDirectory(prefix="certrotate-deadletter-") as tmp:
            spool = Path(tmp) / _SPOOL
            for name in self.list_blob_names(prefix):
                with spool.open("wb") as stream:
                    self.download(name, stream)
                for location, item in iter_file_events(
                    spool, allowed_vault_urls=allowed_vault_urls
                ):
                    yield f"{self.container_name}/{name}{location.removeprefix(_SPOOL)}", item
