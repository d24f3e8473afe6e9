"""Graph methods, one file each."""

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

__all__ = [
    "BGRL",
    "DGI",
    "GRACE",
    "BGRLConfig",
    "DGIConfig",
    "GRACEConfig",
    "GraphCL",
    "GraphCLConfig",
    "GraphGPT",
    "GraphGPTConfig",
    "GraphMAE",
    "GraphMAEConfig",
    "InfoGraph",
    "InfoGraphConfig",
    "LinkPred",
    "LinkPredConfig",
    "ParetoGNN",
    "ParetoGNNConfig",
    "SEENet",
    "SEENetConfig",
]
