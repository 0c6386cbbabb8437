"""Change attribution: which change caused an incident, how sure we are, and why.

signals.py    what a metric measures (errors, latency, quality, resource, traffic) and its weight
stats.py      robust comparisons: effect sizes (consistency, magnitude, sample size), paired
              per-instant comparison of two versions, symptom onset
telemetry.py  the bundle's series by service, version, pod and peer
evidence.py   per-change evidence (version against version, silent new version, before/after
              explained away by callees and load, callers' view, call-graph walk, timing from the
              onset) and the feature rows the model scores
model.py      a conditional logit over the changes and a 'no culprit' option (signed weights);
              the packaged artifact is data/model.json (built by `backout attribution train`)
reasons.py    evidence sentences that name what decided the ranking
generator.py  backout's own generator of incidents (catalog.py: services, kinds, metric names)
nuisance/     an independent generator of nuisance, by family (its own author and docs)
splits.py     which data trains, validates and tests
petshop.py    the PetShop dataset (CC-BY-4.0, vendored in data/petshop) as leak-free incidents
baselines.py  recency, graph + recency, per-version canary comparison, random
training.py   the training mix, reproducible
bench.py      `backout attribution bench`: metrics with bootstrap intervals, baselines, abstention,
              auto-rollback at the shipped runbook threshold, reliability diagram, latency
feedback.py   operator confirm/reject labels (JSONL) used by the next training run
"""
