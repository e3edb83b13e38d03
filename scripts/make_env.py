"""Write .env from .env.example with fresh secrets, unless .env exists already.

This .env is for `make run` and `make test` on a developer's machine, so it lets CRM connections
reach the sandbox CRMs on loopback; a production environment keeps `.env.example`'s off.
"""

import secrets
import sys
from pathlib import Path

from cryptography.fernet import Fernet

root = Path(__file__).resolve().parent.parent
target = root / ".env"
if target.exists():
    sys.exit(0)
lines = []
for line in (root / ".env.example").read_text().splitlines():
    if line.startswith("DJANGO_SECRET_KEY="):
        line = f"DJANGO_SECRET_KEY={secrets.token_urlsafe(50)}"
    elif line.startswith("CRM_CREDENTIALS_KEY="):
        line = f"CRM_CREDENTIALS_KEY={Fernet.generate_key().decode()}"
    elif line.startswith("CRM_ALLOW_LOOPBACK="):
        line = "CRM_ALLOW_LOOPBACK=true"
    lines.append(line)
target.write_text("\n".join(lines) + "\n")
print(f"wrote {target} with fresh secrets")  # noqa: T201
