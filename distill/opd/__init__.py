"""On-policy distillation (`distill opd`): the student samples, the teacher grades every token (TRL's
DistillationTrainer; a local teacher or a vLLM server scoring by token id)."""

from distill.opd.recipe import OPDRecipe, load_opd_recipe, recipe_from_dict
from distill.opd.trainer import opd

__all__ = ["OPDRecipe", "load_opd_recipe", "opd", "recipe_from_dict"]
