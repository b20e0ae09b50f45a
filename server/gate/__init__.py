"""`keyless gate`: the Kubernetes admission webhook that admits only signed images.

Modules: `admission` (AdmissionReview v1 in and out), `gate` (the two decisions over
`client.policy.Evaluator`), `cache` (verdicts: LRU, TTL, single-flight), `metrics` (Prometheus),
`app` (the WSGI app), `tls` (certificates, self-signed for trials), `serve` (gunicorn over
HTTPS), `manifests` (the Kubernetes objects that install it). `app.create_gate_app` is the
composition root; `cli/commands/gate.py` calls it. The client library never imports this package.
"""
