"""The servers: compositions of the CA, the logs, the trust material and the development issuer
into `keyless serve`, with their configuration and state directory.

The client library in `cli` imports nothing from here; only the `keyless serve` command does,
lazily, so signing and verifying never load server code.
"""
