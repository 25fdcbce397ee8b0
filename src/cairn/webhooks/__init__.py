"""Events and webhooks: Cairn's events, stored once and delivered, signed and retried, to
the subscriptions that want them (docs/webhooks.md).

Nothing here is imported by ``import cairn``: the CLI and the services import it on use.
"""
