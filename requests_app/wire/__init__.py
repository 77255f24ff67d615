"""The iDDS client wire protocol under /idds/ (docs/idds-wire.md): a thin adapter over the core's services
and selectors, so the deployed ``idds-client`` works unchanged. No data model and no business logic here:
only decoding paths and bodies, encoding replies, and mapping errors to the client's exception classes."""
