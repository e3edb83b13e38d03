"""CRM credentials at rest: Fernet tokens of a JSON object.

CRM_CREDENTIALS_KEY may list several keys separated by commas: the first encrypts, all decrypt,
so a key can be rotated without re-entering every connection's credentials first.
"""

import json
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings

from integrations.exceptions import CredentialsUnreadable


def _fernet() -> MultiFernet:
    keys = [key.strip() for key in settings.CRM_CREDENTIALS_KEY.split(",") if key.strip()]
    return MultiFernet([Fernet(key.encode()) for key in keys])


def encrypt_json(data: dict[str, Any]) -> str:
    return _fernet().encrypt(json.dumps(data, sort_keys=True).encode()).decode()


def decrypt_json(token: str) -> dict[str, Any]:
    if not token:
        return {}
    try:
        data: dict[str, Any] = json.loads(_fernet().decrypt(token.encode()))
    except InvalidToken as exc:
        raise CredentialsUnreadable("CRM credentials cannot be decrypted with CRM_CREDENTIALS_KEY") from exc
    return data
