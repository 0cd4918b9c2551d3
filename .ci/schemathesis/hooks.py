"""schemathesis hooks for the Joule node API (.ci/api-contract)."""

import schemathesis


# schemathesis has no serializer for application/toml (PUT /v1/config/*): send the generated
# string as UTF-8 text.
@schemathesis.serializer("application/toml")
def toml_serializer(ctx, value):
    if isinstance(value, bytes):
        return value
    return str(value).encode("utf-8")
