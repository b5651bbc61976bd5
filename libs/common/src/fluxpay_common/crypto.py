"""Secrets at rest: API keys hashed (looked up by digest), recoverable secrets encrypted."""

from __future__ import annotations

import hashlib
import hmac
import secrets as _secrets

from cryptography.fernet import Fernet, InvalidToken


def hash_api_key(api_key: str) -> str:
    """SHA-256 of a key; keys are random UUIDs (122 bits), so no slow KDF is needed."""
    return hashlib.sha256(api_key.encode()).hexdigest()


def digests_match(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


def new_webhook_secret() -> str:
    return "whsec_" + _secrets.token_urlsafe(32)


class SecretBox:
    """Symmetric encryption for secrets a service must read back (Fernet: AES + HMAC)."""

    def __init__(self, key: str) -> None:
        self._fernet = Fernet(key.encode())

    def seal(self, plaintext: str) -> str:
        return self._fernet.encrypt(plaintext.encode()).decode()

    def open(self, token: str) -> str:
        try:
            return self._fernet.decrypt(token.encode()).decode()
        except InvalidToken as exc:
            raise ValueError("secret cannot be decrypted with this key") from exc
