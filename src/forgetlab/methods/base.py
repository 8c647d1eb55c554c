"""What a method is: how it relabels the training items, and its loss on a batch.

Each method lives in its own small file and registers itself in ``METHODS`` (the OpenUnlearning
shape: one loss override per method).
"""

from __future__ import annotations

import hashlib
import typing
from dataclasses import dataclass, fields, replace
from typing import Any, ClassVar, Literal, Sequence

import pydantic
import torch
import torch.nn.functional as F

from forgetlab.data.types import MCDoc
from forgetlab.models import additive_mask, logits_at, unwrap_model
from forgetlab.registry import Registry

LossMode = Literal["answer", "full", "choice"]


@dataclass
class Batch:
    """Token tensors of a batch's rows; ``labels`` is -100 wherever no loss is taken.

    For the ``choice`` loss every item contributes all its choices (rows ``i*C .. i*C+C-1``) and
    ``gold`` holds the label of each item; otherwise each item contributes its gold choice only.

    Padded: one row per line, right-padded, ``attention_mask`` ``[lines, width]``. Packed (``row_ids`` set):
    several rows side by side in one line, ``row_ids`` naming the row of each position (-1: padding),
    ``position_ids`` restarting at 0 for each row and ``attention_mask`` a boolean ``[lines, width, width]``
    block-diagonal causal mask, so that each row attends only to itself: the same numbers without the
    padding's compute.
    """

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    labels: torch.Tensor
    gold: torch.Tensor
    n_choices: int
    row_ids: torch.Tensor | None = None
    position_ids: torch.Tensor | None = None

    @property
    def n_rows(self) -> int:
        """Rows of the batch: its lines when padded; the items' rows (``gold`` × choices) when packed."""
        if self.row_ids is None:
            return int(self.input_ids.shape[0])
        return int(self.gold.numel()) * self.n_choices

    def rows(self) -> torch.Tensor:
        """The row of every position, ``[lines, width]`` (for a padded batch: the line)."""
        if self.row_ids is not None:
            return self.row_ids
        lines, width = self.input_ids.shape
        return torch.arange(lines, device=self.input_ids.device)[:, None].expand(lines, width)

    def model_inputs(self, dtype: torch.dtype) -> dict[str, torch.Tensor]:
        """The model's keyword arguments; a packed batch's mask becomes additive in the model's ``dtype``."""
        if self.row_ids is None:
            return {"input_ids": self.input_ids, "attention_mask": self.attention_mask}
        return {"input_ids": self.input_ids, "attention_mask": additive_mask(self.attention_mask, dtype), "position_ids": self.position_ids}

    def to(self, device: torch.device | str) -> "Batch":
        """The batch on ``device`` (the model's: the GPU when training there)."""
        tensors = {f.name: getattr(self, f.name) for f in fields(self)}
        moved = {name: value.to(device, non_blocking=True) for name, value in tensors.items() if isinstance(value, torch.Tensor)}
        return replace(self, **moved)


def sequence_logprobs(model: torch.nn.Module, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
    """Summed log-probability of the labelled tokens of each row, and how many tokens that is.

    The vocabulary is projected only at the positions that predict a label (:func:`labelled_logits`).
    """
    targets = batch.labels[:, 1:]
    mask = targets != -100
    logprobs = torch.log_softmax(labelled_logits(model, batch).float(), dim=-1)
    token_lp = logprobs.gather(-1, targets[mask].unsqueeze(-1)).squeeze(-1)
    counts = torch.bincount(batch.rows()[:, 1:][mask], minlength=batch.n_rows)
    return per_row(batch, mask, token_lp).sum(-1), counts


def per_row(batch: Batch, mask: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """``[rows, width - 1]``: ``values`` of the positions ``mask`` selects (``[lines, width - 1]``, the positions
    that predict a label) put back in their rows, zeros elsewhere; summing over the last axis gives per-row
    sums in position order, whether the batch is padded or packed."""
    lines, cols = mask.nonzero(as_tuple=True)
    rows = batch.rows()[:, 1:][lines, cols]
    out = torch.zeros((batch.n_rows, mask.shape[1]), dtype=values.dtype, device=values.device)
    return out.index_put((rows, cols), values)


def labelled_logits(model: torch.nn.Module, batch: Batch) -> torch.Tensor:
    """``[N, vocab]`` logits at the N positions that predict a labelled token, in line-major order
    (``labels[:, 1:] != -100``): the LM head and the log-softmax cost N rows, not the batch's every token."""
    lines, cols = (batch.labels[:, 1:] != -100).nonzero(as_tuple=True)
    return logits_at(model, lines, cols, **batch.model_inputs(unwrap_model(model).dtype))


def token_nll(model: torch.nn.Module, batch: Batch, reduction: str = "mean") -> torch.Tensor:
    """Cross-entropy of the labelled tokens.

    ``mean``: averaged over every labelled token of the batch (the usual LM loss);
    ``sum``: summed over each sequence's tokens, averaged over sequences.
    """
    total, count = sequence_logprobs(model, batch)
    if reduction == "sum":
        return -total.mean()
    return -total.sum() / count.sum().clamp(min=1)


def choice_cross_entropy(model: torch.nn.Module, batch: Batch) -> torch.Tensor:
    """Classification over the choices: softmax of their summed log-likelihoods, CE to ``gold``."""
    total, _ = sequence_logprobs(model, batch)
    return F.cross_entropy(total.view(-1, batch.n_choices), batch.gold)


def stable_unit(*parts: Any) -> float:
    """A reproducible number in [0, 1) from its parts (independent of Python's hash seed)."""
    digest = hashlib.sha256("\x1f".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


class Method:
    """Base class: supervised training on each item's gold choice with the configured loss."""

    name: ClassVar[str] = "method"
    #: True for methods that push probability *away* from the labels (unlearning by ascent).
    ascent: ClassVar[bool] = False
    #: True for methods whose loss also takes a batch of retain items.
    needs_retain: ClassVar[bool] = False
    #: True for methods that compare against a frozen copy of the model before training.
    needs_reference: ClassVar[bool] = False
    #: True for methods that relabel multiple-choice items (pick another of their choices), so they cannot
    #: train on bare (prompt, target) items.
    needs_choices: ClassVar[bool] = False
    #: True for methods whose batches hold both continuations of every item (collated with ``loss: choice``).
    pairwise: ClassVar[bool] = False
    #: The ``loss`` modes the method works with; the constructor refuses the others.
    supported_losses: ClassVar[tuple[LossMode, ...]] = ("answer", "full", "choice")
    #: λ and kind (``nll`` or ``kl``) of the retain term of :func:`forgetlab.methods.retain.retain_term`;
    #: set per instance by :func:`~forgetlab.methods.retain.configure_retain` (λ = 0: no retain term).
    retain_weight: float = 0.0
    retain_kind: str = "nll"
    #: True for methods that always train on a wrong answer: forgetting pushes accuracy towards 0 rather than
    #: chance, so the forget ratio uses the flipped formula (:func:`forgetlab.metrics.forgetting.forget_ratio`).
    flips_labels: ClassVar[bool] = False

    def __init__(self, loss: LossMode = "answer", reduction: Literal["mean", "sum"] = "mean", **options: Any) -> None:
        if options:
            raise ValueError(f"method {self.name}: unknown options {sorted(options)}")
        if loss not in self.supported_losses:
            supported = " or ".join(self.supported_losses)
            raise ValueError(f"method {self.name}: loss {loss!r} is not supported; use loss: {supported}")
        self.loss_mode = loss
        self.reduction = reduction
        self.reference: torch.nn.Module | None = None

    def default_trainable(self, model: torch.nn.Module) -> str | None:
        """Regex (``re.search``) of the parameter names this method trains when the experiment sets no
        ``forget.trainable``; None: every parameter the model trains (all, or its LoRA adapters)."""
        return None

    def attach_reference(self, reference: torch.nn.Module) -> None:
        """Give the method its frozen reference model (only called when ``needs_reference``)."""
        self.reference = reference.eval().requires_grad_(False)

    def relabel(self, docs: Sequence[MCDoc], seed: int) -> list[MCDoc]:
        """The items with the labels this method trains on (identity by default)."""
        return list(docs)

    def pair_targets(self, item_id: str, target: str, seed: int) -> tuple[list[str], int]:
        """The continuations to train on for one (prompt, target) item, and the index of the gold one
        (the target itself by default; refusals or preference pairs for the methods that rewrite it)."""
        return [target], 0

    def loss(self, model: torch.nn.Module, batch: Batch, retain: Batch | None = None) -> torch.Tensor:
        """The scalar to minimise on one batch (``retain`` is given to methods that need it)."""
        if self.loss_mode == "choice":
            supervised = choice_cross_entropy(model, batch)
        else:
            supervised = token_nll(model, batch, self.reduction)
        return -supervised if self.ascent else supervised


METHODS: Registry[type[Method]] = Registry("method")


def check_options(method: type[Method], options: dict[str, Any], where: str = "options") -> None:
    """Check each option's value against the type its method's constructor declares (pydantic), so that
    ``retain_weight: abc`` fails before any work with the option named; unknown names fail in the constructor."""
    hints: dict[str, Any] = {}
    for klass in reversed(method.__mro__):  # a subclass's declaration wins over its bases'
        if "__init__" in vars(klass):
            hints.update(typing.get_type_hints(klass.__init__))
    for name, value in options.items():
        if name not in hints or name in ("loss", "reduction", "return"):
            continue
        try:
            pydantic.TypeAdapter(hints[name]).validate_python(value)
        except pydantic.ValidationError as error:
            problem = "; ".join(e["msg"] for e in error.errors())
            raise ValueError(f"{where}.{name}: {value!r} is not valid for method {method.name}: {problem}") from None
