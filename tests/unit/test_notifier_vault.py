"""services/notifier/vault.py: webhook secrets sealed at rest, opened only with a key
from WEBHOOK_SECRET_KEYS, resealed under a new first key, and the settings that
refuse a bad or public key."""

import pytest
from cryptography.fernet import Fernet
from pydantic import ValidationError

from services.notifier.settings import NotifierSettings
from services.notifier.signing import new_webhook_secret
from services.notifier.vault import DEV_KEY, SEALED_PREFIX, SecretVault, VaultError, parse_keys
from tests.support import PRODUCTION_SETTINGS

OLD, NEW = Fernet.generate_key().decode(), Fernet.generate_key().decode()


def test_a_sealed_secret_shows_nothing_of_itself_and_opens_with_the_key():
    vault, secret = SecretVault([OLD]), new_webhook_secret()
    sealed = vault.seal(secret)
    assert sealed.startswith(SEALED_PREFIX) and secret not in sealed and secret[6:20] not in sealed
    assert vault.open(sealed) == secret
    assert vault.seal(secret) != sealed  # a fresh IV each time: equal secrets do not show as equal
    assert vault.seal(None) is None and vault.open(None) is None


def test_without_the_key_a_sealed_secret_cannot_be_opened():
    sealed = SecretVault([OLD]).seal(new_webhook_secret())
    with pytest.raises(VaultError, match="no longer in WEBHOOK_SECRET_KEYS"):
        SecretVault([NEW]).open(sealed)
    tampered = sealed[:-4] + ("AAAA" if not sealed.endswith("AAAA") else "BBBB")
    with pytest.raises(VaultError):
        SecretVault([OLD]).open(tampered)


def test_a_secret_stored_before_sealing_is_read_as_it_is_and_resealed():
    vault, plain = SecretVault([OLD]), new_webhook_secret()
    assert vault.open(plain) == plain
    sealed = vault.reseal(plain)
    assert sealed.startswith(SEALED_PREFIX) and vault.open(sealed) == plain


def test_rotation_the_new_first_key_seals_the_old_one_still_opens_and_reseal_moves_every_secret():
    secret = new_webhook_secret()
    under_old = SecretVault([OLD]).seal(secret)
    both = SecretVault([NEW, OLD])
    assert both.open(under_old) == secret
    assert SecretVault([NEW]).open(both.seal(secret)) == secret
    moved = both.reseal(under_old)
    assert moved != under_old and SecretVault([NEW]).open(moved) == secret  # the old key can go now
    assert both.reseal(moved) == moved  # already under the first key: left as it is
    assert both.reseal(None) is None
    with pytest.raises(VaultError):
        SecretVault([NEW]).reseal(under_old)


def test_keys_parse_strictly_and_the_error_never_shows_a_key():
    assert parse_keys(f" {NEW} , {OLD} ") == [NEW, OLD]
    for text in ["", " , ", f"{NEW},not-a-key"]:
        with pytest.raises(ValueError, match="WEBHOOK_SECRET_KEYS") as refused:
            parse_keys(text)
        assert NEW not in str(refused.value)


def production(**overrides) -> dict:
    return (
        PRODUCTION_SETTINGS
        | {
            "ack_link_secret": "l" * 40,
            "public_base_url": "https://112.blitarkab.go.id",
            "webhook_secret_keys": NEW,
        }
        | overrides
    )


def test_production_refuses_the_public_development_key_even_beside_its_own(monkeypatch):
    monkeypatch.delenv("WEBHOOK_SECRET_KEYS", raising=False)
    assert NotifierSettings(**production()).vault().open(SecretVault([NEW]).seal("whsec_x")) == "whsec_x"
    for keys in [DEV_KEY, f"{NEW},{DEV_KEY}"]:
        with pytest.raises(ValidationError, match="WEBHOOK_SECRET_KEYS must be set"):
            NotifierSettings(**production(webhook_secret_keys=keys))
    with pytest.raises(ValidationError, match="key 1 is not a Fernet key"):
        NotifierSettings(webhook_secret_keys="short")
