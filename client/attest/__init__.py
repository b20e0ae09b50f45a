"""In-toto attestations: statements, bundle files, attestations on images, and Rego policies."""
