"""Link-prediction pretraining (the graph autoencoder objective of Kipf and Welling, 2016, "Variational
Graph Auto-Encoders", trained on held-out edges as in ParetoGNN's P-Link task).

Each step hides a random ``mask_rate`` of the undirected edges from message passing, encodes the rest,
and scores node pairs by the inner product of their embeddings: the hidden edges are positives, as many
random non-edges of the same graphs (PyG's ``batched_negative_sampling``) are negatives, with binary
cross entropy (``ssl_graph.models.heads.link_prediction_loss``). Hiding the scored edges keeps the task
from being solved by copying the input.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from torch_geometric.data import Batch

from ssl_core.errors import ConfigError
from ssl_core.method import MethodOutput
from ssl_graph.data.graphs import GraphInfo
from ssl_graph.methods.common import GNNMethod
from ssl_graph.models.encoder import EncoderConfig
from ssl_graph.models.heads import link_prediction_loss


@dataclass
class LinkPredConfig:
    """Link-prediction settings (``--set method.<name>=<value>``).

    Args:
        encoder: the GNN.
        mask_rate: share of undirected edges hidden and predicted at each step.
    """

    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    mask_rate: float = 0.2

    def __post_init__(self) -> None:
        if not 0 < self.mask_rate < 1:
            raise ConfigError(f"method.mask_rate must lie in (0, 1), got {self.mask_rate}")


class LinkPred(GNNMethod):
    """Link prediction: inner-product decoder over held-out edges against random non-edges.

    Shapes:
        - batch: a PyG batch of graphs (or node neighbourhoods)
        - :meth:`embed`: a batch of ``B`` graphs -> ``(B, embed_dim)``
    """

    def __init__(self, config: LinkPredConfig, info: GraphInfo) -> None:
        super().__init__(config, info)

    def forward(self, batch: Batch) -> MethodOutput:
        return MethodOutput(link_prediction_loss(self.backbone, batch, self.config.mask_rate), {})
