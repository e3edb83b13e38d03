"""Platform authentication: `Authorization: Api-Key <key>`, keys stored hashed (djangorestframework-api-key)."""

from rest_framework_api_key.models import AbstractAPIKey, APIKey

from integrations.auth import HasHashedKey, HashedKeyAuthentication, HashedKeyScheme

KEYWORD = "Api-Key"


class PlatformApiKeyAuthentication(HashedKeyAuthentication):
    """Authenticates the contact-center platform; `request.auth` is its APIKey row."""

    keyword = KEYWORD
    model = APIKey
    label = "API key"


class HasPlatformApiKey(HasHashedKey):
    model = AbstractAPIKey
    message = "Authenticate with the header `Authorization: Api-Key <key>`."


class PlatformApiKeyScheme(HashedKeyScheme):
    target_class = PlatformApiKeyAuthentication
    name = "PlatformApiKey"
    description = "`Api-Key <key>`; create keys in the admin or with `manage.py create_api_key NAME`."
