"""The lowest layer, which every other package may import and which imports none of them: the one
error contract, byte-level facts (key types, signature schemes, DSSE's PAE, base64, RFC 3339) and
the strict readers of untrusted YAML."""
