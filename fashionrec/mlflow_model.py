"""MLflow "model from code" for the compatibility model: no pickled Python objects.

MLflow stores this file's source with the model; weights are a plain state dict loaded with
``torch.load(weights_only=True)`` and the model's info is JSON.
"""

from __future__ import annotations

import json
import warnings

import mlflow
import numpy as np
import torch
from mlflow.pyfunc import PythonModel


class CompatPyfunc(PythonModel):
    """predict(array of shape (n, 2 * embed_dim): concat(a, b) rows) -> (n,) scores in (0, 1).

    A ``type_aware`` model's rows are concat(a, b, group_a, group_b): two more columns holding
    the groups' indices into ``info.groups`` (see ``fashionrec.model_kinds``)."""

    def load_context(self, context) -> None:
        from fashionrec.model_kinds import build_model, info_from_dict

        with open(context.artifacts["info"]) as fh:
            self.info = info_from_dict(json.load(fh))  # dispatches on info["kind"]
        self.model = build_model(self.info)
        state = torch.load(context.artifacts["weights"], map_location="cpu", weights_only=True)
        self.model.load_state_dict(state)
        self.model.eval()

    def predict(self, context, model_input, params=None):
        from fashionrec.model_kinds import pyfunc_predict

        return pyfunc_predict(self.model, self.info, np.asarray(model_input, dtype=np.float32))


# predict takes a plain array (its signature is logged); MLflow's type-hint validation does not apply
warnings.filterwarnings("ignore", message=".*type hints to the `predict` method", category=UserWarning)
mlflow.models.set_model(CompatPyfunc())
