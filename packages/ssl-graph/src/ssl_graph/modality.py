"""The graph modality as the core discovers it (entry point ``ssl_core.modalities: graph``)."""

from ssl_core.eval.config import ProbeConfig
from ssl_core.modality import Modality, Recipe
from ssl_core.train.config import TrainConfig
from ssl_graph.data.graphs import DATASETS, GraphDataConfig, load_data
from ssl_graph.methods.bgrl import BGRL, BGRLConfig
from ssl_graph.methods.dgi import DGI, DGIConfig
from ssl_graph.methods.grace import GRACE, GRACEConfig
from ssl_graph.methods.graphcl import GraphCL, GraphCLConfig
from ssl_graph.methods.graphgpt import GraphGPT, GraphGPTConfig
from ssl_graph.methods.graphmae import GraphMAE, GraphMAEConfig
from ssl_graph.methods.infograph import InfoGraph, InfoGraphConfig
from ssl_graph.methods.linkpred import LinkPred, LinkPredConfig
from ssl_graph.methods.paretognn import ParetoGNN, ParetoGNNConfig
from ssl_graph.methods.seenet import SEENet, SEENetConfig
from ssl_graph.models.encoder import build_encoder
from ssl_graph.models.graph_transformer import build_graph_transformer
from ssl_graph.models.seconv import build_seconv

# Graph-level probes as InfoGraph and GraphMAE report them: 10-fold cross-validated linear SVM on all
# labelled graphs, beside kNN and logistic regression on a fixed stratified 80/20 split.
PROBE = ProbeConfig(cv_folds=10, k=10, batch_size=256)


def _train(epochs: float, batch_size: int, lr: float, **kw) -> TrainConfig:
    # every default run fits in 5 minutes on 2 CPU cores; max_minutes is only the safety net
    # threads=1: these models are tiny, and one thread is 5-30x faster than two when other jobs share the cores
    return TrainConfig(epochs=epochs, batch_size=batch_size, lr=lr, max_minutes=3.0, log_every=5, threads=1, **kw)


modality = Modality(
    name="graph",
    summary="graphs and molecules on PyTorch Geometric (MUTAG by default; TU folders, PyG files, edge lists)",
    data_config=GraphDataConfig(),
    load_data=load_data,
    recipes=Modality.recipe_map(
        Recipe(
            name="graphcl",
            method=GraphCL,
            config=GraphCLConfig(),
            summary="GraphCL: two augmented views of each graph, NT-Xent over graph embeddings",
            paper="You et al., 2020, Graph Contrastive Learning with Augmentations",
            train=_train(epochs=100, batch_size=64, lr=1e-3),
            probe=PROBE,
        ),
        Recipe(
            name="grace",
            method=GRACE,
            config=GRACEConfig(),
            summary="GRACE: edge-dropped / feature-masked views, NT-Xent over node embeddings",
            paper="Zhu et al., 2020, Deep Graph Contrastive Representation Learning",
            train=_train(epochs=100, batch_size=64, lr=1e-3),
            probe=PROBE,
        ),
        Recipe(
            name="infograph",
            method=InfoGraph,
            config=InfoGraphConfig(),
            summary="InfoGraph: Jensen-Shannon mutual information between node and graph embeddings",
            paper="Sun et al., 2020, InfoGraph: Unsupervised and Semi-supervised Graph-Level Representation Learning",
            train=_train(epochs=100, batch_size=64, lr=1e-3),
            probe=PROBE,
        ),
        Recipe(
            name="dgi",
            method=DGI,
            config=DGIConfig(),
            summary="DGI: bilinear discrimination of real vs feature-shuffled nodes against the graph summary",
            paper="Velickovic et al., 2019, Deep Graph Infomax",
            train=_train(epochs=100, batch_size=64, lr=1e-3),
            probe=PROBE,
        ),
        Recipe(
            name="bgrl",
            method=BGRL,
            config=BGRLConfig(),
            summary="BGRL: online encoder + predictor regress an EMA target's node embeddings of the other view",
            paper="Thakoor et al., 2022, Large-Scale Representation Learning on Graphs via Bootstrapping",
            train=_train(epochs=100, batch_size=64, lr=1e-3, ema_momentum=0.99),
            probe=PROBE,
        ),
        Recipe(
            name="graphmae",
            method=GraphMAE,
            config=GraphMAEConfig(),
            summary="GraphMAE: masked node features rebuilt through re-masking, scaled cosine error",
            paper="Hou et al., 2022, GraphMAE: Self-Supervised Masked Graph Autoencoders",
            train=_train(epochs=100, batch_size=64, lr=5e-4, weight_decay=0.0),
            probe=PROBE,
        ),
        Recipe(
            name="linkpred",
            method=LinkPred,
            config=LinkPredConfig(),
            summary="link prediction: inner products of node embeddings score hidden edges against non-edges",
            paper="Kipf and Welling, 2016, Variational Graph Auto-Encoders (the non-variational GAE objective)",
            train=_train(epochs=100, batch_size=64, lr=1e-3),
            probe=PROBE,
        ),
        Recipe(
            name="paretognn",
            method=ParetoGNN,
            config=ParetoGNNConfig(),
            summary="ParetoGNN: link, node-graph MI, node contrast and reconstruction tasks balanced by MGDA",
            paper="Ju et al., 2023, Multi-task Self-supervised Graph Neural Networks Enable Stronger Task "
            "Generalization",
            train=_train(epochs=100, batch_size=64, lr=1e-3),
            probe=PROBE,
        ),
        Recipe(
            name="graphgpt",
            method=GraphGPT,
            config=GraphGPTConfig(),
            summary="GraphGPT: a transformer over Eulerian-path serialisations, next-token prediction",
            paper="Zhao et al., 2023, GraphGPT: Graph Learning with Generative Pre-trained Transformers",
            # a 0.1 M-parameter transformer: 60 epochs (180 steps) take about 2 minutes on 2 cores
            train=_train(epochs=60, batch_size=64, lr=1e-3, warmup_epochs=5),
            probe=PROBE,
        ),
        Recipe(
            name="seenet",
            method=SEENet,
            config=SEENetConfig(),
            summary="SEENet: SEConv over an evolving graph's time slots, global-local time-aware tasks",
            paper="Li et al., 2023, Multi-Temporal Relationship Inference in Urban Areas",
            train=_train(epochs=20, batch_size=64, lr=1e-3),
            data=GraphDataConfig(name="urban"),
            probe=PROBE,
        ),
    ),
    backbones={"gnn": build_encoder, "graph_transformer": build_graph_transformer, "seconv": build_seconv},
    datasets=DATASETS,
)
