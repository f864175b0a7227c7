"""The reinforcement stage: GRPO (TRL) with the project's verifiers as rewards, R1-Zero and R1 recipes."""

from distill.reinforce.grpo import reinforce
from distill.reinforce.recipe import GRPORecipe, load_grpo_recipe, recipe_from_dict
from distill.reinforce.rewards import RewardSet, well_formed

__all__ = ["GRPORecipe", "RewardSet", "load_grpo_recipe", "recipe_from_dict", "reinforce", "well_formed"]
