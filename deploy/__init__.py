"""Running many replicas: the nginx gRPC balancer (``deploy.nginx``), a local launcher (``python -m deploy.cluster``)
and Kubernetes manifests (``deploy/k8s``). Imports nothing of ``runtime``; ``runtime`` never imports this."""
