"""Images -> vectors, into the embedding store.

- ``images``: safe image loading (every state a shop's files come in), ``preset``: the CNN's input
- ``backbones``: the one registry of CNNs; ``config``: ``EmbedConfig``
- ``colour``: the product's colour descriptor; ``precision``, ``onnx_cpu``: fast, checked inference
- ``store``: the parts on disk (by image sha256); ``plan``: hashes, shards, resume;
  ``encode``: the inference engine; ``stage``: the stage itself (``embed_items``)

Importing this package imports none of them: the read API uses ``store`` without torch.
"""
