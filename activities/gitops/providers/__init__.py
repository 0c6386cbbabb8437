"""Pull/merge request providers: one small interface (base.py), one module per provider, one factory."""
