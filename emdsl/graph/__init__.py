"""Stage 3: the factor graph with index maps (see :mod:`.factor_graph`, :mod:`.index`)."""
from .factor_graph import FactorGraph, Plate, build_graph, factor_references
from .index import EDGE_KINDS, Axis, Ref, edge_kind

__all__ = ["FactorGraph", "Plate", "build_graph", "factor_references", "Axis", "Ref", "EDGE_KINDS", "edge_kind"]
