"""Offline logit distillation (`objective: kd`): the loss, the collator that brings the teacher's top-K in from
the sidecar's memory map, and a TRL SFTTrainer whose only change is `compute_loss`.

The teacher's distribution at each generated token is stored as its K most likely ids with their logprobs.
The mass beyond them is handled explicitly, not dropped: both distributions are compared over K+1 buckets,
the teacher's K ids and one "rest of the vocabulary" bucket. The teacher's rest is 1 - sum(top-K probs);
the student's is 1 - sum(its probs on the same K ids), from its full softmax. So a student that puts mass
outside the teacher's top K is charged for it in the rest bucket, and the loss is zero exactly when the
student matches the teacher on the K ids (and hence on the rest). With all of the vocabulary in the top K
this is the full divergence; with fewer ids it is the divergence of the two coarse-grained distributions, a
lower bound on the full one.

Losses (p the teacher's buckets, q the student's, m a mixture):
- `forward_kl`: sum p (log p - log q) (mode-covering; the usual logit KD)
- `reverse_kl`: sum q (log q - log p) (mode-seeking)
- `jsd`: beta KL(p || m) + (1 - beta) KL(q || m), m = beta p + (1 - beta) q, 0 < beta < 1 (TRL's GKD form)
`temperature` T softens both bucket distributions alike (each bucket probability raised to 1/T, renormalised)
and multiplies the loss by T^2 (Hinton et al.); at T = 1 the buckets are the raw distributions. `alpha` weighs
cross-entropy on the teacher's sampled tokens against KD: loss = alpha CE + (1 - alpha) KD, per trained token,
averaged over the trained tokens of the batch (so packed rows give the loss of the same samples unpacked).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import numpy as np

from distill.errors import DistillError
from distill.train.data import IGNORE, PackedRowsCollator, pack_rows
from distill.train.sft import packing_mode, peft_config, sft_config

if TYPE_CHECKING:  # torch loads when a student trains, not when distill is imported
    import torch

    from distill.train.kd_data import KDRecords
    from distill.train.recipe import KDSettings

log = logging.getLogger(__name__)
LOG_FLOOR = -30.0  # log of a bucket treated as empty (exp(-30) ~ 1e-13): keeps 0 * log 0 finite


def log1mexp(x: torch.Tensor) -> torch.Tensor:
    """log(1 - exp(x)) for x <= 0, stable near 0 and for very negative x; x is clamped just below 0 (the tail
    of a distribution whose top K hold all the mass is empty, not negative)."""
    import torch

    x = x.clamp(max=-1e-7)
    return torch.where(x > -0.6931, torch.log(-torch.expm1(x)), torch.log1p(-torch.exp(x))).clamp(min=LOG_FLOOR)


def buckets(logprobs: torch.Tensor) -> torch.Tensor:
    """K log-probabilities plus the log of the rest (1 - their sum), on the last axis: K+1 log-buckets."""
    import torch

    rest = log1mexp(torch.logsumexp(logprobs, dim=-1, keepdim=True))
    return torch.cat([logprobs.clamp(min=LOG_FLOOR), rest], dim=-1)


def divergence(student: torch.Tensor, teacher: torch.Tensor, loss: str, beta: float) -> torch.Tensor:
    """Per-position divergence between two log-distributions over the last axis."""
    import torch

    q, p = student.exp(), teacher.exp()
    if loss == "forward_kl":
        return (p * (teacher - student)).sum(-1)
    if loss == "reverse_kl":
        return (q * (student - teacher)).sum(-1)
    if loss == "jsd":
        mixture = torch.logsumexp(torch.stack([teacher + np.log(beta), student + np.log1p(-beta)]), dim=0)
        return beta * (p * (teacher - mixture)).sum(-1) + (1 - beta) * (q * (student - mixture)).sum(-1)
    raise DistillError(f"kd.loss: {loss!r} is not one of forward_kl, reverse_kl, jsd")


def token_losses(logits: torch.Tensor, labels: torch.Tensor, teacher_ids: torch.Tensor, teacher_logprobs: torch.Tensor,
                 settings: KDSettings) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-token `(loss, kd, ce)` at the trained positions, and the mask of those positions.

    `logits` [B, L, V] predict the next token; `labels`, `teacher_ids` and `teacher_logprobs` ([B, L], [B, L, K])
    are given at the token they describe (as labels are), and are shifted here like the model shifts labels.
    """
    import torch

    logits, labels = logits[:, :-1].float(), labels[:, 1:]
    ids, teacher = teacher_ids[:, 1:, : settings.top_k], teacher_logprobs[:, 1:, : settings.top_k].float()
    mask = labels != IGNORE
    logits, labels, ids, teacher = logits[mask], labels[mask], ids[mask], teacher[mask]
    student_full = torch.log_softmax(logits, dim=-1)
    ce = -student_full.gather(-1, labels[:, None]).squeeze(-1)
    student = buckets(student_full.gather(-1, ids.long()))
    target = buckets(teacher)
    temperature = settings.temperature
    if temperature != 1.0:
        student = torch.log_softmax(student / temperature, dim=-1)
        target = torch.log_softmax(target / temperature, dim=-1)
    kd = divergence(student, target, settings.loss, settings.beta) * temperature**2
    return settings.alpha * ce + (1 - settings.alpha) * kd, kd, ce, mask


def mean_loss(logits: torch.Tensor, labels: torch.Tensor, teacher_ids: torch.Tensor, teacher_logprobs: torch.Tensor,
              settings: KDSettings) -> torch.Tensor:
    """The batch's loss: the per-token loss averaged over its trained tokens."""
    loss, _, _, mask = token_losses(logits, labels, teacher_ids, teacher_logprobs, settings)
    return loss.sum() / mask.sum().clamp(min=1)


class KDCollator:
    """Batches as SFT builds them (padded, packed rows, or padding-free), plus `kd_ids` and `kd_logprobs` [B, L, K]
    read from the sidecar's memory map at the positions each row's `kd_row`/`kd_pos` columns name. Checks that
    the ids being trained are the ids of the record (the labels cannot drift from the teacher's tokens)."""

    def __init__(self, records: KDRecords, pad_token_id: int, layout: str, top_k: int) -> None:
        from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

        self.records = records
        self.layout = layout
        self.top_k = top_k
        if layout == "rows":
            self.inner: Any = PackedRowsCollator(pad_token_id)
        else:
            self.inner = DataCollatorForLanguageModeling(pad_token_id=pad_token_id, padding_free=layout == "padding_free",
                                                         return_position_ids=True)

    def __call__(self, examples: list[dict[str, Any]]) -> dict[str, Any]:
        """Collate, then fill the teacher's top-K at every position a record covers."""
        import torch

        batch = self.inner([{k: v for k, v in e.items() if k not in ("kd_row", "kd_pos")} for e in examples])
        width = batch["input_ids"].shape[1]
        if self.layout == "padding_free":
            rows = [np.concatenate([np.asarray(e["kd_row"]) for e in examples])]
            positions = [np.concatenate([np.asarray(e["kd_pos"]) for e in examples])]
        else:
            rows = [np.asarray(e["kd_row"]) for e in examples]
            positions = [np.asarray(e["kd_pos"]) for e in examples]
        ids = np.zeros((len(rows), width, self.top_k), dtype=np.int64)
        values = np.zeros((len(rows), width, self.top_k), dtype=np.float32)
        labels = batch["labels"].numpy()
        for b, (row, pos) in enumerate(zip(rows, positions, strict=True)):
            for record_index in np.unique(row[row >= 0]):
                at = np.nonzero(row == record_index)[0]
                record = self.records.record(int(record_index))
                steps = pos[at]
                trained = labels[b, at] != IGNORE
                if not np.array_equal(labels[b, at][trained], record.token_ids[steps][trained]):
                    raise DistillError(f"{self.records.where(int(record_index))}: the trained ids differ from the "
                                       "record's token ids")
                ids[b, at] = record.top_ids[steps, : self.top_k]
                values[b, at] = record.top_logprobs[steps, : self.top_k]
            if ((labels[b] != IGNORE) & (np.pad(row, (0, width - len(row)), constant_values=-1) < 0)).any():
                raise DistillError("a trained token has no teacher record (the corpus and its sidecar disagree)")
        batch["kd_ids"] = torch.from_numpy(ids)
        batch["kd_logprobs"] = torch.from_numpy(values)
        return batch


def kd_trainer_class() -> type:
    """TRL's SFTTrainer with `compute_loss` replaced by the KD loss (built in a function: TRL loads when a
    student trains, not on import). Everything else (optimiser, schedule, checkpoints, resume, logging, peft)
    is the SFT trainer's."""
    from trl import SFTTrainer

    class KDTrainer(SFTTrainer):  # type: ignore[misc]
        # The loss is divided by the batch's trained tokens over the whole accumulation (num_items_in_batch).
        loss_is_scaled_for_ga = True

        def __init__(self, *args: Any, kd: KDSettings, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.kd = kd

        def compute_loss(self, model: Any, inputs: dict[str, Any], return_outputs: bool = False,
                         num_items_in_batch: Any = None) -> Any:
            teacher_ids, teacher_logprobs = inputs.pop("kd_ids"), inputs.pop("kd_logprobs")
            labels = inputs.pop("labels")
            outputs = model(**inputs, use_cache=False)
            loss, kd, ce, mask = token_losses(outputs.logits, labels, teacher_ids, teacher_logprobs, self.kd)
            count = mask.sum()
            denominator = num_items_in_batch if num_items_in_batch is not None else count
            total = loss.sum() / at_least_one(denominator)
            mode = "train" if self.model.training else "eval"
            if count > 0:
                self._metrics[mode]["kd_loss"].append((kd.sum() / count).item())
                self._metrics[mode]["ce_loss"].append((ce.sum() / count).item())
            return (total, outputs) if return_outputs else total

    return KDTrainer


def at_least_one(value: Any) -> Any:
    """A token count as a tensor of at least 1 (a batch without trained tokens gives a zero loss, not 0/0)."""
    import torch

    return torch.as_tensor(value).clamp(min=1)


def build_kd_trainer(recipe: Any, model: Any, tokenizer: Any, dataset: Any, records: KDRecords, out_dir: Any,
                     max_steps: int | None, packed: bool = False) -> Any:
    """The KD trainer over the prepared dataset (`packed`: already packed into rows): SFT's config and adapters,
    the KD collator and loss."""
    rows = model.get_input_embeddings().num_embeddings
    if records.max_id >= rows:
        raise DistillError(f"{recipe.path}: the teacher's records hold token id {records.max_id}, beyond the "
                           f"student's {rows}-row embedding")
    layout = packing_mode(recipe)
    if layout == "rows" and not packed:
        dataset = pack_rows(dataset, recipe.max_length)
    args = sft_config(recipe, out_dir, max_steps)
    args.remove_unused_columns = False  # kd_row/kd_pos reach the collator
    args.packing = False  # packed here (rows) or flattened by the collator (padding_free)
    collator = KDCollator(records, tokenizer.pad_token_id, layout, recipe.kd.top_k)
    return kd_trainer_class()(model=model, args=args, data_collator=collator, train_dataset=dataset,
                              processing_class=tokenizer, peft_config=peft_config(recipe), kd=recipe.kd)
