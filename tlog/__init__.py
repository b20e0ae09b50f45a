"""Transparency logs: the RFC 6962 Merkle engine, durable storage and signed checkpoints."""
