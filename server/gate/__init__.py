"""`keyless gate`: the Kubernetes admission webhook that admits only signed images.

Modules: `admission` (AdmissionReview v1 in and out), `gate` (the two decisions over
`client.policy.Evaluator`), `cache` (verdicts: LRU, TTL, single-flight), `metrics` (Prometheus),
`app` (the WSGI app), `tls` (certificates, self-signed for trials), `serve` (gunicorn over
HTTPS), `manifests` (the Kubernetes objects that install it). The client library never imports
this package; only `cli/commands/gate.py` composes it.
"""
