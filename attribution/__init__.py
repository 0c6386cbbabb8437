"""Change attribution: which change caused an incident, how sure we are, and why.

features.py   per-candidate features from a bundle (timing, graph relation, canary and
              before/after shifts, change-point alignment, symptom movement)
model.py      gradient-boosted scorer + listwise calibration with a 'no culprit' option;
              the packaged artifact is data/model.json (built by `backout attribution train`)
baselines.py  recency, graph+recency, random
generator.py  synthetic AI-service incidents (catalog.py: services, kinds, faults, metrics)
petshop.py    the PetShop dataset (CC-BY-4.0) as incidents with synthetic distractor changes
feedback.py   operator confirm/reject labels (JSONL) used by the next training run
bench.py      HR@1, HR@3, MRR, ECE per held-out set, latency, training time
"""
