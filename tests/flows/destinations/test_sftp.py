"""Delivery to an SFTP server through fsspec's paramiko filesystem, against asyncssh's SFTP
server on loopback.

What a user checks: the file at the final path holds every cell (read back with a separate
paramiko client), no temporary file is left, a re-run replaces the file, and bad logins,
unknown host keys and lost connections fail with a clear message.
"""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import Any

import pytest

from blocks import SftpCredentials
from flows.core.formats import ExportFormat, file_extension
from flows.export import export
from flows.request import DestinationConfig
from tests.flows.conftest import demo_dataset
from tests.flows.destinations.stores import failed_message, failing_source, measure_large_exports
from tests.flows.formats.test_roundtrip import assert_round_trip
from tests.servers.sftp import SftpServer

pytestmark = pytest.mark.usefixtures("prefect_api")

FORMATS: tuple[ExportFormat, ...] = ("csv", "jsonl", "json", "xml", "parquet")
MB = 1024 * 1024


def listing(sftp: SftpServer, folder: str) -> list[str]:
    """File names in a folder on the server; [] when the folder does not exist."""
    with sftp.client() as client:
        try:
            return sorted(client.listdir(folder))
        except FileNotFoundError:
            return []


def download(sftp: SftpServer, path: str, folder: Path) -> Path:
    local = folder / path.strip("/").replace("/", "_")
    with sftp.client() as client:
        client.get(path, str(local))
    return local


def save_sftp_block(name: str, sftp: SftpServer, **options: Any) -> str:
    """An SftpCredentials block for the test server: password login, its host key pinned."""
    fields: dict[str, Any] = {
        "username": SftpServer.USER,
        "password": SftpServer.PASSWORD,
        "known_hosts": sftp.known_hosts,
        "timeout_s": 10,
    }
    SftpCredentials(**{**fields, **options}).save(name, overwrite=True)
    return name


@pytest.fixture
def sftp_block(sftp: SftpServer) -> str:
    return save_sftp_block("test-sftp", sftp)


def orders() -> dict[str, Any]:
    return {"url": f"sqlite:///{Path(__file__).parents[3] / 'demo' / 'demo.sqlite'}",
            "table": "orders"}  # fmt: skip


class TestRoundTrip:
    @pytest.mark.parametrize("fmt", FORMATS)
    def test_every_cell_arrives(
        self, sftp: SftpServer, sftp_folder: str, sftp_block: str, tmp_path: Path,
        fmt: ExportFormat,
    ) -> None:  # fmt: skip
        result = export(
            source=orders(),
            destination={
                "url": sftp.url(f"{sftp_folder}/daily/{{export}}.{{ext}}"),
                "block": sftp_block,
            },  # fmt: skip
            format=fmt,
        )
        name = f"orders.{file_extension(fmt)}"
        assert result.files == [sftp.url(f"{sftp_folder}/daily/{name}")]
        assert listing(sftp, f"{sftp_folder}/daily") == [name], "a temporary file was left"
        path = download(sftp, f"{sftp_folder}/daily/{name}", tmp_path)
        assert result.bytes == path.stat().st_size
        assert_round_trip(fmt, path, demo_dataset("orders"))

    def test_parts_and_gzip(
        self, sftp: SftpServer, sftp_folder: str, sftp_block: str, tmp_path: Path
    ) -> None:
        local = export(
            source=orders(),
            destination={"url": f"{tmp_path}/local/{{export}}.{{ext}}"},
            format="jsonl",
        )
        remote = export(
            source={**orders(), "chunk_rows": 100},
            destination={
                "url": sftp.url(f"{sftp_folder}/parts/{{export}}.{{ext}}"),
                "block": sftp_block,
                "max_file_mb": 0.02,  # the orders compress to ~54 KB
                "compression": "gzip",
            },
            format="jsonl",
        )
        assert len(remote.files) > 1
        data = b""
        for remote_url in remote.files:
            path = remote_url.removeprefix(sftp.url(""))
            assert path.endswith(".jsonl.gz") and Path(path).name.startswith("orders-000")
            data += gzip.decompress(download(sftp, path, tmp_path).read_bytes())
        assert data == Path(local.files[0]).read_bytes()
        assert len(listing(sftp, f"{sftp_folder}/parts")) == len(remote.files)

    def test_private_key_with_a_passphrase(
        self, sftp: SftpServer, sftp_folder: str, tmp_path: Path
    ) -> None:
        key = bytes(sftp.client_key.export_private_key("openssh", passphrase="pass-phrase"))
        save_sftp_block(
            "test-sftp-key", sftp, username=SftpServer.KEY_USER, password=None,
            private_key=key.decode(), private_key_passphrase="pass-phrase",
        )  # fmt: skip
        export(
            source=orders(),
            destination={
                "url": sftp.url(f"{sftp_folder}/{{export}}.{{ext}}"),
                "block": "test-sftp-key",
            },  # fmt: skip
        )
        path = download(sftp, f"{sftp_folder}/orders.csv", tmp_path)
        assert_round_trip("csv", path, demo_dataset("orders"))

    def test_rerun_replaces_the_file(
        self, sftp: SftpServer, sftp_folder: str, sftp_block: str, tmp_path: Path
    ) -> None:
        destination = {"url": sftp.url(f"{sftp_folder}/{{export}}.{{ext}}"), "block": sftp_block}
        for delimiter in (";", "|"):
            export(source=orders(), destination=destination,
                   format_options={"delimiter": delimiter})  # fmt: skip
            header = download(sftp, f"{sftp_folder}/orders.csv", tmp_path).read_text()
            assert header.startswith(f"order_id{delimiter}"), header[:40]
        sftp.posix_rename = False  # a server without OpenSSH's posix-rename: rename after rm
        export(source=orders(), destination=destination)
        path = download(sftp, f"{sftp_folder}/orders.csv", tmp_path)
        assert_round_trip("csv", path, demo_dataset("orders"))
        assert listing(sftp, sftp_folder) == ["orders.csv"]


class TestEnvironment:
    def test_user_in_the_url_and_ssh_keys_without_a_block(
        self, sftp: SftpServer, sftp_folder: str, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:  # fmt: skip
        ssh = tmp_path / "home" / ".ssh"
        ssh.mkdir(parents=True)
        (ssh / "id_ed25519").write_text(sftp.client_key_text)
        (ssh / "id_ed25519").chmod(0o600)
        (ssh / "known_hosts").write_text(sftp.known_hosts + "\n")
        monkeypatch.setenv("HOME", str(ssh.parent))
        monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
        url = f"sftp://{SftpServer.KEY_USER}@{sftp.host}:{sftp.port}{sftp_folder}/{{export}}.csv"
        result = export(source=orders(), destination={"url": url})
        assert result.files == [sftp.url(f"{sftp_folder}/orders.csv")]  # no user shown
        path = download(sftp, f"{sftp_folder}/orders.csv", tmp_path)
        assert_round_trip("csv", path, demo_dataset("orders"))

    def test_warn_policy_connects_to_an_unknown_host_and_says_so(
        self, sftp: SftpServer, sftp_folder: str, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
    ) -> None:  # fmt: skip
        monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.ssh/known_hosts
        save_sftp_block("test-sftp-warn", sftp, known_hosts=None, known_hosts_policy="warn")
        export(
            source=orders(),
            destination={
                "url": sftp.url(f"{sftp_folder}/{{export}}.csv"),
                "block": "test-sftp-warn",
            },  # fmt: skip
        )
        assert listing(sftp, sftp_folder) == ["orders.csv"]
        warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
        expected = f"accepting the unknown ssh-ed25519 host key of [{sftp.host}]:{sftp.port}"
        assert any(expected in message for message in warnings), warnings


class TestFailures:
    def test_wrong_password_fails_at_once(self, sftp: SftpServer, sftp_folder: str) -> None:
        save_sftp_block("test-sftp-wrong", sftp, password="not-the-password-77")
        before = sftp.connections_made
        message = failed_message(
            source=orders(),
            destination={
                "url": sftp.url(f"{sftp_folder}/{{export}}.{{ext}}"),
                "block": "test-sftp-wrong",
            },  # fmt: skip
        )
        assert f"SFTP server `{sftp.host}:{sftp.port}` as `{SftpServer.USER}`" in message
        assert "refused the login" in message and "SftpCredentials" in message
        assert "not-the-password-77" not in message
        assert sftp.connections_made - before == 1, "a permanent error was retried"

    def test_unknown_host_key_is_rejected(
        self, sftp: SftpServer, sftp_folder: str, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:  # fmt: skip
        monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.ssh/known_hosts either
        save_sftp_block("test-sftp-no-host-key", sftp, known_hosts=None)
        message = failed_message(
            source=orders(),
            destination={
                "url": sftp.url(f"{sftp_folder}/{{export}}.{{ext}}"),
                "block": "test-sftp-no-host-key",
            },  # fmt: skip
        )
        assert f"the host key of `{sftp.host}:{sftp.port}` is unknown" in message
        assert "SftpCredentials.known_hosts" in message
        assert SftpServer.PASSWORD not in message
        assert listing(sftp, sftp_folder) == []

    def test_error_mid_export_leaves_nothing(
        self, sftp: SftpServer, sftp_folder: str, sftp_block: str, tmp_path: Path
    ) -> None:
        state = export(
            source=failing_source(tmp_path, text="x" * 100, fail_at=10_000),
            destination={
                "url": sftp.url(f"{sftp_folder}/{{export}}.{{ext}}"),
                "block": sftp_block,
            },  # fmt: skip
            return_state=True,
        )
        assert state.is_failed()
        assert listing(sftp, sftp_folder) == [], "a failed run left files behind"

    def test_password_in_the_url_is_refused_before_the_run(self, sftp: SftpServer) -> None:
        url = f"sftp://{SftpServer.USER}:hunter2-secret@{sftp.host}:{sftp.port}/x/{{export}}.csv"
        before = sftp.connections_made
        message = failed_message(source=orders(), destination={"url": url})
        assert "destination.url" in message and "SftpCredentials block" in message
        assert "hunter2-secret" not in message
        assert sftp.connections_made == before

    @pytest.mark.parametrize(
        ("url", "expected"),
        [
            ("sftp:///in/{export}.csv", "must name a server"),
            ("sftp://{deployment}.example/in/{export}.csv", "no template tokens there"),
            ("sftp://host:99999/in/{export}.csv", "no valid host and port"),
            ("sftp://u:p%40ss@host/in/{export}.csv", "`sftp://u:***@host/...` carries a password"),
        ],
    )
    def test_bad_urls_are_refused_by_the_config(self, url: str, expected: str) -> None:
        with pytest.raises(ValueError, match="destination.url") as caught:
            DestinationConfig(url=url)
        assert expected in str(caught.value) and "p%40ss" not in str(caught.value)

    def test_missing_block_is_named(self, sftp: SftpServer, sftp_folder: str) -> None:
        message = failed_message(
            source=orders(),
            destination={"url": sftp.url(f"{sftp_folder}/{{export}}.csv"), "block": "nope"},
        )
        assert "destination.block: no saved SftpCredentials block named `nope`" in message


class TestConnectionLoss:
    """The server cuts the connection, or goes away, in the middle of an upload."""

    def test_every_attempt_cut_fails_cleanly(
        self, sftp: SftpServer, sftp_folder: str, sftp_block: str, tmp_path: Path
    ) -> None:
        sftp.drop_uploads(after_bytes=1 * MB)
        before = sftp.faults_fired
        message = failed_message(
            source=failing_source(tmp_path, text="y" * 200, fail_at=0),  # 4 MB, no failing row
            destination={
                "url": sftp.url(f"{sftp_folder}/{{export}}.{{ext}}"),
                "block": sftp_block,
            },  # fmt: skip
        )
        assert f"cannot deliver `{sftp.url(sftp_folder)}/export.csv` to SFTP" in message
        assert "retried" in message
        assert sftp.faults_fired - before == 3  # the write task and its two retries
        sftp.clear_faults()
        assert listing(sftp, sftp_folder) == [], "a cut upload left files behind"

    def test_server_restart_mid_upload_is_retried(
        self, sftp: SftpServer, sftp_folder: str, sftp_block: str, tmp_path: Path
    ) -> None:
        sftp.restart_during_upload(after_bytes=1 * MB, down_s=1.0)
        result = export(
            source=failing_source(tmp_path, text="y" * 200, fail_at=0),
            destination={
                "url": sftp.url(f"{sftp_folder}/{{export}}.{{ext}}"),
                "block": sftp_block,
            },  # fmt: skip
        )
        assert result.rows == 20_000
        # The first attempt's temporary file could not be removed while the server was
        # down; the retry removed it.
        assert listing(sftp, sftp_folder) == ["export.csv"]
        path = download(sftp, f"{sftp_folder}/export.csv", tmp_path)
        assert path.stat().st_size == result.bytes
        lines = path.read_text().splitlines()
        assert len(lines) == 20_001 and lines[-1] == f"20000,{'y' * 200}"


class TestLargeUpload:
    def test_50_and_100_mb_stream_with_flat_memory(
        self, sftp: SftpServer, sftp_folder: str, sftp_block: str, tmp_path: Path
    ) -> None:
        destination = {"url": sftp.url(f"{sftp_folder}/{{export}}.{{ext}}"), "block": sftp_block}
        report = measure_large_exports(destination, tmp_path)
        print(f"\nSFTP uploads: {report.line()}")  # noqa: T201
        sizes, growth = report.sizes_mib, report.growth_mb
        assert sizes[0] > 50 and sizes[1] > 100
        assert growth[1] - growth[0] < 8, report  # doubling the file adds (almost) nothing
        assert growth[1] < 40, report
        assert listing(sftp, sftp_folder) == ["export.csv"]
        assert (sftp.root / sftp_folder.strip("/") / "export.csv").stat().st_size == (
            report.bytes[1]
        )
