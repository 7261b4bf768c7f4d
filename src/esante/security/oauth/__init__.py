"""The authorization server (OAuth 2 / SMART App Launch / SMART Backend Services / IHE IUA).

Modules, one concern each:

- ``clients``: the OAuth client model and the validation of a registration (pure);
- ``client_store``: the ``oauth_client`` table;
- ``grant_store``: authorization codes, refresh token families, revoked access tokens, used assertion jti;
- ``grants_policy``: which scopes a request is granted and which claims its access token carries (pure);
- ``tickets``: the signed, short-lived tickets that carry the authorization request between the login and the
  consent page (no server sessions);
- ``server``: the authlib integration for Starlette (the sync/async bridge) and the authlib grants;
- ``activity``: whether an issued access token is still active (revocation, account and client state);
- ``metadata``: the RFC 8414 and SMART configuration documents (pure);
- ``pages``: the login and consent pages (jinja2 templates under ``security/templates``);
- ``routes``: :func:`oauth_routes`, mounted by ``esante.app``.

See docs/security.md, "Authorization server".
"""
