"""GitOps development harness: Flux controllers built from Go modules, Git over HTTP on loopback, the Argo CD CRD, provider REST recorders."""
