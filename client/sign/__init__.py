"""Signing: an identity token in, logged Sigstore bundles out; the CA, log and TSA clients."""
