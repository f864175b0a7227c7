"""Student training: SFT of a student on a distilled corpus with TRL and peft (see ARCHITECTURE.md).

`load_student_recipe(path)` reads students/*.yaml; `train(recipe_or_path, data_dir, out_dir, ...)`
fine-tunes and returns the checkpoint directory; `export(checkpoint, out, merge=True)` merges a LoRA
adapter into a full model.
"""

from __future__ import annotations

from distill.train.core import train
from distill.train.export import export
from distill.train.recipe import LoraSettings, StudentRecipe, TinySettings, load_student_recipe

__all__ = ["LoraSettings", "StudentRecipe", "TinySettings", "export", "load_student_recipe", "train"]
