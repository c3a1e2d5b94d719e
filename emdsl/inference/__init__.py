"""Stage 4: the inference plan and, from it, the updates (see ``ENGINE.md``)."""
from .plan import TREATMENTS, Plan, Treatment, make_plan

__all__ = ["Plan", "Treatment", "TREATMENTS", "make_plan"]
