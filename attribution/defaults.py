"""The training mix's default sizes, importable without the training code (the CLI shows them in
`backout attribution train --help`, which must not load numpy, scipy or the generators)."""

DEFAULT_SEED = 7
DEFAULT_SYNTHETIC = 2_000
DEFAULT_NUISANCE_PER_FAMILY = 60
