"""The certificate authority: Fulcio-compatible issuance of short-lived code-signing certs."""
