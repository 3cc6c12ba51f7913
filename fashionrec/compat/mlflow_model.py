"""MLflow "model from code" for the compatibility model: no pickled Python objects.

MLflow stores this file's source with the model (for ``mlflow.pyfunc.load_model`` and
``mlflow models serve``); weights are a plain state dict loaded with
``torch.load(weights_only=True)`` and the model's info is JSON. fashionrec itself loads models
from those two files (``compat.tracking``) without running this code.
"""

from __future__ import annotations

import json
import warnings

import mlflow
import numpy as np
import torch
from mlflow.pyfunc import PythonModel

# predict takes a plain array (its signature is logged), so MLflow's type-hint check does not
# apply; it warns when the class is defined, under a "once" filter of its own that an "ignore"
# filter cannot override: the definition's warnings are recorded here and the others re-issued
with warnings.catch_warnings(record=True) as _caught:

    class CompatPyfunc(PythonModel):
        """predict(rows concat(a, b, group_a, group_b)) -> (n,) scores in (0, 1); the groups are
        indices into the model's ``info.groups`` (``fashionrec.compat.kinds.pyfunc_predict``)."""

        def load_context(self, context) -> None:
            from fashionrec.compat.kinds import build_model, info_from_dict

            with open(context.artifacts["info"]) as fh:
                self.info = info_from_dict(json.load(fh))
            self.model = build_model(self.info)
            state = torch.load(context.artifacts["weights"], map_location="cpu", weights_only=True)
            self.model.load_state_dict(state)
            self.model.eval()

        def predict(self, context, model_input, params=None):
            from fashionrec.compat.kinds import pyfunc_predict

            return pyfunc_predict(self.model, self.info, np.asarray(model_input, dtype=np.float32))

for _w in _caught:
    if "type hint" not in str(_w.message):
        warnings.warn_explicit(_w.message, _w.category, _w.filename, _w.lineno)

mlflow.models.set_model(CompatPyfunc())
