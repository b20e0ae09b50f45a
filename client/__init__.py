"""The client library: sign, verify, trust and TUF, OCI images, policies, attestations, and the
transparency tools (monitor, audit, tile reader). Used by the command line and by the gate."""
