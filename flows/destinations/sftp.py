"""SFTP servers (flows/destinations/sftp_filesystem.py): `sftp://host[:port]/path`, paths
absolute on the server. The file is streamed to a hidden temporary name, its size checked, then
renamed. Without a block: the user in the URL, the SSH agent, ~/.ssh keys and known_hosts."""

from __future__ import annotations

from typing import Any, cast
from urllib.parse import unquote, urlsplit

from fsspec import AbstractFileSystem
from prefect.blocks.core import Block

from blocks.sftp import SftpCredentials
from flows.core.errors import ConfigurationError
from flows.destinations.store import Store


class Sftp(Store):
    name = "SFTP"
    schemes = ("sftp",)
    protocol = "sftp"
    block_types = (SftpCredentials,)
    discards_uploads = True  # closing an upload checks that every byte arrived
    retry_hint = (
        "the connection to the server was lost or timed out (retried; check the server is "
        "running and reachable)"
    )
    check_hint = "check the folder exists or may be created, and that the user may write there"
    full_disk_words = "the server's disk is full"
    full_disk_hint = "free space on the server or raise the user's quota"

    def check_url(self, template: str) -> None:
        """A server URL names its host, and never a password: URLs are logged and shown."""
        netloc = template.partition("://")[2].partition("/")[0]
        userinfo, at, hostport = netloc.rpartition("@")
        if at and ":" in userinfo:
            user = userinfo.partition(":")[0]
            raise ConfigurationError(
                f"destination.url: `sftp://{user}:***@{hostport}/...` carries a password, and "
                "URLs are logged",
                field="destination.url",
                hint="save the password in an SftpCredentials block, name it in "
                f"destination.block and write sftp://{user}@{hostport}/...",
            )
        try:
            parts = urlsplit(template)
            port = parts.port
        except ValueError as exc:
            raise ConfigurationError(
                f"destination.url: `{template}` has no valid host and port ({exc})",
                field="destination.url",
                hint="write sftp://host[:port]/path/{export}.{ext}",
            ) from None
        if not parts.hostname or "{" in netloc or port == 0:
            raise ConfigurationError(
                f"destination.url: `{template}` must name a server (no template tokens there)",
                field="destination.url",
                hint="write sftp://host[:port]/path/{export}.{ext}",
            )

    def connect(self, url: str, options: dict[str, Any], block: Block | None) -> AbstractFileSystem:  # noqa: ARG002 - the interface of every store
        """Connect to the URL's host; the URL's user and port come before the block's."""
        from flows.destinations.sftp_filesystem import SftpFileSystem

        parts = urlsplit(url)
        if parts.username:
            user = unquote(parts.username)
            if options.get("username") not in (None, user):
                raise ConfigurationError(
                    f"destination: the URL logs in as `{user}` and the block's username is "
                    f"`{options['username']}`",
                    field="destination",
                    hint="keep one of them",
                )
            options["username"] = user
        if parts.port:
            options["port"] = parts.port
        assert parts.hostname, "check_url makes sure sftp:// URLs name a host"
        return cast(
            AbstractFileSystem, SftpFileSystem(parts.hostname, skip_instance_cache=True, **options)
        )


SFTP = Sftp()
