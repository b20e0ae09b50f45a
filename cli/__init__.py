"""The `keyless` command, the client library behind it, and `keyless serve`."""
