"""MLflow "model from code" for the compatibility model: no pickled Python objects.

MLflow stores this file's source with the model; weights are a plain state dict loaded with
``torch.load(weights_only=True)`` and the model's info is JSON.
"""

from __future__ import annotations

import json

import mlflow
import numpy as np
import torch
from mlflow.pyfunc import PythonModel


class CompatPyfunc(PythonModel):
    """predict(array of shape (n, 2 * embed_dim): concat(a, b) rows) -> (n,) scores in (0, 1)."""

    def load_context(self, context) -> None:
        from fashionrec.compat import CompatibilityMLP, CompatModelInfo

        with open(context.artifacts["info"]) as fh:
            self.info = CompatModelInfo(**json.load(fh))
        self.model = CompatibilityMLP(self.info.embed_dim, self.info.hidden_dim)
        state = torch.load(context.artifacts["weights"], map_location="cpu", weights_only=True)
        self.model.load_state_dict(state)
        self.model.eval()

    def predict(self, context, model_input, params=None):
        x = torch.as_tensor(np.asarray(model_input, dtype=np.float32))
        d = self.info.embed_dim
        with torch.inference_mode():
            return self.model(x[:, :d], x[:, d:]).squeeze(1).numpy()


mlflow.models.set_model(CompatPyfunc())
