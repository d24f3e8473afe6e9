"""A method's own heads are scored beside the probes: ``Method.head_scores`` adds its columns to the pretrained
and the random-init rows of the probe table (and to no baseline row)."""

import torch

from ssl_core.config import base_config, merge, to_run_config
from ssl_core.data import DataBundle, LabeledSplit
from ssl_core.modality import Recipe
from ssl_core.run import _probe
from ssl_core.testing.registry_fixture import modality
from ssl_core.testing.toy import ToyConfig, ToyMethod


class HeadMethod(ToyMethod):
    """Scores its head as the share of test inputs whose first embedding coordinate is positive, a number that
    depends on the weights, so the pretrained and the untrained rows differ."""

    def head_scores(self, bundle, device):
        x = torch.stack(list(bundle.probe_test.inputs)).to(device)
        return {"head_positive": (self.backbone(x)[:, 0] > 0).float().mean()}


def test_head_scores_become_columns_of_the_method_rows(tmp_path):
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(40, 8, generator=g), torch.arange(40) % 2
    bundle = DataBundle(list(x), None, "toy", LabeledSplit(list(x[:30]), y[:30]), LabeledSplit(list(x[30:]), y[30:]))
    recipe = Recipe("tiny", HeadMethod, ToyConfig(), "toy")
    cfg = to_run_config(merge(base_config(modality, recipe), overrides=["probe.linear=false", "probe.k=3",
                                                                         "probe.cache=false"]))  # fmt: skip
    torch.manual_seed(1)
    method = HeadMethod(ToyConfig())
    with torch.no_grad():
        method.backbone.weight.zero_()
        method.backbone.bias.fill_(1.0)  # every first coordinate positive: 1.0
    table = _probe(recipe, cfg, bundle, method, torch.device("cpu"), tmp_path)
    assert table["pretrained"]["head_positive"] == 1.0
    assert table["random_init"]["head_positive"] < 1.0  # the untrained method the run builds scores its own head
    assert "head_positive" not in table["raw_input"]
    assert set(table["pretrained"]) == {"knn_top1", "head_positive"}
