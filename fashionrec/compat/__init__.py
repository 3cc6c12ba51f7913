"""Compatibility models: which items go together, learned from outfits.

- ``kinds``: the one registry of model kinds and the interface every kind implements
  (``CompatModel``); ``info``: what a trained model records (kind, backbone, groups, settings)
- ``mlp``: the design's pairwise MLP; ``type_aware``: type-aware embeddings (Vasileva et al.)
- ``config``: training settings and presets; ``triplets``: (anchor, positive, negative) from outfits
- ``training``: the training loops; ``metrics`` / ``evaluation``: AUC and FITB on a split
- ``tracking`` / ``mlflow_model``: MLflow runs, the registry, promotion, pickle-free loading
"""
