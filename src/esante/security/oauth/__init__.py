"""The authorization server (OAuth 2 / SMART App Launch / SMART Backend Services / IHE IUA).

Modules, one concern each:

- ``clients``: the OAuth client model and the validation of a registration (pure);
- ``client_store``: the ``oauth_client`` table;
- ``grant_store``: authorization codes, refresh token families, revoked access tokens, used assertion jti;
- ``grants_policy``: which scopes a request is granted and which claims its access token carries (pure);
- ``tickets``: the signed, short-lived tickets that carry the authorization request between the login and the
  consent page (no server sessions);
- ``integration``: authlib on Starlette (the request handed to the worker thread, the bridge to the event loop);
- ``server``: the authlib authorization server bound to the platform (token minting, introspection lookups);
- ``client_auth``, ``grants``, ``endpoints``: private_key_jwt, the three grants, introspection and revocation;
- ``activity``: whether an issued access token is still active (revocation, account and client state);
- ``metadata``: the RFC 8414 and SMART configuration documents (pure);
- ``authorize``, ``pages``: the authorization endpoint's steps; the login and consent pages (jinja2 templates under
  ``security/templates``);
- ``context``: what the routes share;
- ``routes``: :func:`oauth_routes`, mounted by ``esante.app``.

See docs/security.md, "Authorization server".
"""
