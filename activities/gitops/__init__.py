"""GitOps: rollbacks that stick when Flux or Argo CD re-applies Git's desired state.

ownership.py recognises the reconciler that owns an object and its Git source;
manifests.py finds the commit that introduced an object's content; reconcilers.py
suspends and resumes exactly that reconciler; git.py writes and pushes the revert;
providers/ opens the pull/merge request; activities.py exposes it all to Temporal.
"""
