"""API keys (deployments/gateway/keys.py, `exports keys`) against the session's Prefect API."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import httpx
import pytest
from cryptography.fernet import Fernet, InvalidToken
from prefect.blocks.system import Secret
from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import VariableUpdate
from prefect.settings import PREFECT_API_URL, temporary_settings
from typer.testing import CliRunner

from deployments.cli.app import app
from deployments.gateway import master_secrets as master_secrets_module
from deployments.gateway.keys import (
    REGISTRY_TAG,
    REVOKED_TAG,
    ApiKeyError,
    InvalidKey,
    create_key,
    list_keys,
    revoke_key,
    verify_key,
)
from deployments.gateway.master_secrets import SECRETS_BLOCK, SECRETS_ENV, forget_secrets
from tests.conftest import REPO_ROOT
from tests.servers.ports import free_port

pytestmark = pytest.mark.usefixtures("prefect_api")

runner = CliRunner()


@pytest.fixture(autouse=True)
def _in_repo_root(monkeypatch: pytest.MonkeyPatch) -> None:
    """prefect.yaml names deployments for the CLI."""
    monkeypatch.chdir(REPO_ROOT)


@pytest.fixture
def without_secret_block(master_secret: str) -> Iterator[None]:
    """No Secret block for one test; the session's is saved again afterwards."""
    Secret.delete(SECRETS_BLOCK)
    forget_secrets()
    try:
        yield
    finally:
        Secret(value=master_secret).save(SECRETS_BLOCK, overwrite=True)
        forget_secrets()


def flip(token: str, index: int) -> str:
    """The key with one character changed (in the middle: not a base64 padding bit)."""
    char = token[index]
    return token[:index] + ("A" if char != "A" else "B") + token[index + 1 :]


class TestMasterSecrets:
    def test_no_secret_names_both_ways(self, without_secret_block: None) -> None:  # noqa: ARG002
        with pytest.raises(ApiKeyError) as caught:
            create_key("export/orders-api", "alice")
        message = str(caught.value)
        assert SECRETS_ENV in message and SECRETS_BLOCK in message and "init-secret" in message

    def test_init_secret_refuses_to_overwrite_and_rotates(
        self,
        without_secret_block: None,  # noqa: ARG002
        idle_deployment: str,
    ) -> None:
        made = runner.invoke(app, ["keys", "init-secret"])
        assert made.exit_code == 0, made.output
        first = str(Secret.load(SECRETS_BLOCK).get())
        assert len(first.split(",")) == 1
        old_token, _ = create_key(idle_deployment, "alice")

        again = runner.invoke(app, ["keys", "init-secret"])
        assert again.exit_code == 1 and "--rotate" in again.stderr
        assert str(Secret.load(SECRETS_BLOCK).get()) == first

        rotated = runner.invoke(app, ["keys", "init-secret", "--rotate"])
        assert rotated.exit_code == 0, rotated.output
        value = str(Secret.load(SECRETS_BLOCK).get())
        assert value.split(",")[1] == first and len(value.split(",")) == 2
        new_token, _ = create_key(idle_deployment, "bob")
        assert verify_key(old_token).user == "alice", "keys of the old secret keep working"
        assert verify_key(new_token).user == "bob"
        with pytest.raises(InvalidToken):  # made under the new secret only
            Fernet(first.encode()).decrypt(new_token.removeprefix("pex_").encode())

        # Retiring the old secret: its keys stop working.
        Secret(value=value.split(",")[0]).save(SECRETS_BLOCK, overwrite=True)
        forget_secrets()
        with pytest.raises(InvalidKey):
            verify_key(old_token)
        assert verify_key(new_token).user == "bob"

    def test_environment_comes_first(
        self, monkeypatch: pytest.MonkeyPatch, master_secret: str, idle_deployment: str
    ) -> None:
        other = Fernet.generate_key().decode()
        monkeypatch.setenv(SECRETS_ENV, other)
        token, _ = create_key(idle_deployment, "carol")
        assert verify_key(token).user == "carol"
        monkeypatch.delenv(SECRETS_ENV)
        assert master_secret
        with pytest.raises(InvalidKey, match="master secret"):
            verify_key(token)


@pytest.mark.usefixtures("master_secret")
class TestKeys:
    def test_claims_registry_and_last_used(self, idle_deployment: str) -> None:
        token, record = create_key(idle_deployment, "dora@example.com", expires_in_days=30)
        assert token.startswith("pex_") and record.deployment == idle_deployment
        claims = verify_key(token)
        assert (claims.key_id, claims.user, claims.deployment) == (
            record.key_id,
            "dora@example.com",
            idle_deployment,
        )
        assert claims.created.tzinfo is not None and claims.expires is not None
        with get_client(sync_client=True) as client:
            variable = client.read_variable_by_name(f"exports-key-{record.key_id}")
        assert variable is not None and variable.tags == [REGISTRY_TAG]
        assert token not in json.dumps(variable.value)
        assert token.removeprefix("pex_") not in json.dumps(variable.value)
        assert isinstance(variable.value, dict) and variable.value["last_used"] is not None
        first_use = variable.value["last_used"]
        time.sleep(1.1)
        verify_key(token)  # within the minute: not written again
        with get_client(sync_client=True) as client:
            again = client.read_variable_by_name(f"exports-key-{record.key_id}")
        assert again is not None and isinstance(again.value, dict)
        assert again.value["last_used"] == first_use
        [listed] = [item for item in list_keys() if item.key_id == record.key_id]
        assert listed.state == "active" and listed.user == "dora@example.com"

    @pytest.mark.parametrize(
        "spoil",
        [
            lambda token: flip(token, len(token) // 2),
            lambda token: flip(token, 10),
            lambda token: token + "!",
            lambda token: token[:-4],
            lambda token: token.replace("pex_", "pex-"),
            lambda token: " " + token,
            lambda _token: "pex_" + "A" * 120,
            lambda _token: "",
        ],
        ids=["flip-middle", "flip-start", "extra", "cut", "prefix", "space", "garbage", "empty"],
    )
    def test_tampered_keys_are_refused(self, idle_deployment: str, spoil: object) -> None:
        token, _ = create_key(idle_deployment, "eve")
        assert callable(spoil)
        with pytest.raises(InvalidKey) as caught:
            verify_key(spoil(token))
        assert token not in str(caught.value) and "pex_" not in str(caught.value)

    def test_a_key_no_secret_opens_is_refused_while_the_api_is_down(
        self, idle_deployment: str, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Issue 17: with the Prefect API down, a well-formed key made under another secret
        got 503 (the block could not be read again); the secrets read last still refuse it.
        A key they open needs its registry entry, which the API holds: that stays a 503."""
        token, _ = create_key(idle_deployment, "finn")
        forget_secrets()
        assert verify_key(token).user == "finn"  # the gateway has read the secrets
        foreign = "pex_" + Fernet(Fernet.generate_key()).encrypt(b"{}").decode()
        monkeypatch.setattr(master_secrets_module, "SECRETS_TTL_S", 0.0)  # read at every use
        down = f"http://127.0.0.1:{free_port()}/api"  # nothing listens there
        with temporary_settings(updates={PREFECT_API_URL: down}):
            with pytest.raises(InvalidKey, match="master secret"):
                verify_key(foreign)
            with pytest.raises(httpx.HTTPError):
                verify_key(token)
        forget_secrets()

    def test_revoked_expired_and_unregistered(self, idle_deployment: str) -> None:
        revoked, record = create_key(idle_deployment, "frank")
        revoke_key(record.key_id)
        with pytest.raises(InvalidKey, match="revoked"):
            verify_key(revoked)
        with get_client(sync_client=True) as client:
            variable = client.read_variable_by_name(f"exports-key-{record.key_id}")
            assert variable is not None and REVOKED_TAG in variable.tags
            # a concurrent last_used write that missed the revocation: the tag still holds
            client.update_variable(
                VariableUpdate(name=variable.name, value={**variable.value, "revoked_at": None})
            )
        with pytest.raises(InvalidKey, match="revoked"):
            verify_key(revoked)

        expired, _ = create_key(idle_deployment, "gina", expires_in_days=-1)
        with pytest.raises(InvalidKey, match="expired"):
            verify_key(expired)
        short, _ = create_key(idle_deployment, "gina", expires_in_days=2 / 86400)
        assert verify_key(short).user == "gina"
        time.sleep(3)
        with pytest.raises(InvalidKey, match="expired"):
            verify_key(short)

        removed, record = create_key(idle_deployment, "hal")
        with get_client(sync_client=True) as client:
            client.delete_variable_by_name(f"exports-key-{record.key_id}")
        with pytest.raises(InvalidKey, match="not in the registry"):
            verify_key(removed)

    def test_unknown_deployment_and_user(self) -> None:
        with pytest.raises(ApiKeyError, match="not deployed"):
            create_key("export/no-such-trigger", "ivan")
        with pytest.raises(ApiKeyError, match="FLOW/NAME"):
            create_key("orders-api", "ivan")
        with pytest.raises(ApiKeyError, match="user"):
            create_key("export/orders-api", "ivan the terrible")
        with pytest.raises(ApiKeyError, match="exports keys list"):
            revoke_key("0123456789abcdef")


@pytest.mark.usefixtures("master_secret")
class TestKeysCli:
    def test_create_list_revoke(self, idle_deployment: str) -> None:
        # a prefect.yaml name resolves to flow/name
        made = runner.invoke(
            app,
            ["keys", "create", "orders-api", "--user", "jo", "--expires-in-days", "7", "--json"],
        )
        assert made.exit_code == 0, made.output
        payload = json.loads(made.stdout)
        token, key_id = payload["key"], payload["key_id"]
        assert payload["deployment"] == idle_deployment and payload["state"] == "active"
        assert "store this key now" in payload["warning"]
        assert verify_key(token).key_id == key_id

        plain = runner.invoke(app, ["keys", "create", idle_deployment, "--user", "jo"])
        assert plain.exit_code == 0, plain.output
        assert plain.stdout.splitlines()[1].startswith("pex_")
        assert "store this key now" in plain.stderr

        listed = runner.invoke(app, ["keys", "list", "--json"])
        assert listed.exit_code == 0
        entries = {item["key_id"]: item for item in json.loads(listed.stdout)}
        assert entries[key_id]["user"] == "jo" and entries[key_id]["expires"] is not None
        table = runner.invoke(app, ["keys", "list"])
        for output in (listed.stdout, table.stdout):
            assert "pex_" not in output and token.removeprefix("pex_") not in output
        assert key_id in table.stdout

        revoked = runner.invoke(app, ["keys", "revoke", key_id])
        assert revoked.exit_code == 0 and "revoked" in revoked.stdout
        again = json.loads(runner.invoke(app, ["keys", "list", "--json"]).stdout)
        assert {item["key_id"]: item for item in again}[key_id]["state"] == "revoked"
        with pytest.raises(InvalidKey):
            verify_key(token)

    def test_errors_are_one_line(self) -> None:
        missing = runner.invoke(app, ["keys", "create", "export/nope", "--user", "jo"])
        assert missing.exit_code == 1
        assert missing.stderr.startswith("error: deployment `export/nope` is not deployed")
        unknown = runner.invoke(app, ["keys", "create", "no-such", "--user", "jo"])
        assert unknown.exit_code == 2 and "no deployment named `no-such`" in unknown.stderr
        bad = runner.invoke(app, ["keys", "revoke", "nope"])
        assert bad.exit_code == 1 and len(bad.stderr.splitlines()) == 1
        days = runner.invoke(app, ["keys", "create", "orders-api", "--user", "jo",
                                   "--expires-in-days", "0"])  # fmt: skip
        assert days.exit_code == 2
