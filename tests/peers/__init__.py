"""Clients nobody here wrote, as oracles: each signs against a running `keyless serve` or reads
its logs and trust, and verifies keyless's bundles; keyless verifies theirs."""
