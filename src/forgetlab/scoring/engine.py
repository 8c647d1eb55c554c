"""The scoring engine: the one place that turns (context, continuation) pairs into log-likelihoods.

Numbers equal lm-evaluation-harness 0.4.13's ``hf`` model (``HFLM.loglikelihood``) within float noise:
the same tokenisation (:func:`encode_pair`), the same left truncation, the same ``is_greedy``. It is
faster because it

* deduplicates requests (by string, then by tokens);
* runs every distinct context ONCE: the continuations of one context are laid out after it as a
  prefix tree (shared continuation prefixes are run once too) and attend only to their own branch
  through a 4-D attention mask with matching position ids (``prefix_sharing``);
* projects onto the vocabulary (``lm_head`` + ``log_softmax``) only at the positions that predict
  continuation tokens (a pre-hook on the output layer gathers them), never at context positions;
* packs short rows side by side into one sequence (block-diagonal mask, first-fit decreasing) and
  batches by a token budget, longest first, so there is almost no padding.

Plain rows (one sequence per distinct ``context + continuation[:-1]``, right-padded, the model's own
causal mask, one-token continuations read off their context's row like lm-eval's logits cache) are
used where a custom mask could change results: attention kernels other than sdpa/eager, models
without ``position_ids``, and items longer than a model's sliding attention window.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from typing import Any, Iterator, Literal, Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from forgetlab.models import accepts_custom_masks, additive_mask, forward_params, logits_at, num_hidden_layers, unwrap_model
from forgetlab.onednn import WORTH_PACKING_TOKENS, OneDnnLinears
from forgetlab.precision import forward_autocast
from forgetlab.scoring.encoding import Boundary, RequestEncoder, resolve_max_length
from forgetlab.scoring.rows import PACK_WIDTH, TREE_ROW_TOKENS, Row, assign_ranks, batches, chunks, plain_rows, tree_row

log = logging.getLogger(__name__)

OnOverlong = Literal["error", "truncate"]


# --------------------------------------------------------------------------------------- results


@dataclass(frozen=True)
class ScoredRequest:
    """The score of one (context, continuation) request."""

    logprob: float  # sum of log p over the continuation tokens
    is_greedy: bool  # every continuation token is the argmax of its position
    n_tokens: int  # continuation tokens scored


@dataclass(frozen=True)
class TokenScores:
    """Per continuation token of one request (membership-inference statistics).

    ``logprobs[t] = log p(x_t | x<t)``; ``greedy[t]``: ``x_t`` is the argmax; ``mu[t] = Σ_v p(v) log p(v)``
    and ``sigma[t] = sqrt(Σ_v p(v) (log p(v) − mu[t])²)``: mean and std of ``log p`` over the vocabulary
    under ``p(·|x<t)`` (Min-K%++, Zhang et al. 2024). ``logprobs.sum()`` is :class:`ScoredRequest`'s ``logprob``.
    """

    logprobs: np.ndarray
    greedy: np.ndarray
    mu: np.ndarray
    sigma: np.ndarray


# --------------------------------------------------------------------------------------- model helpers


class _EvalMode:
    """Eval mode + ``torch.inference_mode`` while scoring, linears through oneDNN where that is faster and
    bit-identical (:mod:`forgetlab.onednn`); restores every module's train flag after."""

    def __init__(self, model: torch.nn.Module, onednn_linears: bool) -> None:
        self.model = model
        self.onednn_linears = onednn_linears
        self.modes: dict[torch.nn.Module, bool] = {}
        self.stack = contextlib.ExitStack()

    def __enter__(self) -> None:
        self.modes = {m: m.training for m in self.model.modules()}
        self.model.eval()
        with contextlib.ExitStack() as stack:  # a failure while entering undoes what was entered
            stack.enter_context(torch.inference_mode())
            stack.enter_context(OneDnnLinears(self.model, self.onednn_linears))
            self.stack = stack.pop_all()

    def __exit__(self, *exc: Any) -> None:
        self.stack.__exit__(*exc)
        for module, training in self.modes.items():
            module.training = training


# --------------------------------------------------------------------------------------- scorer


class Scorer:
    """Scores loglikelihood requests and reads hidden states of a causal LM, lm-eval-exact and fast.

    Args:
        model, tokenizer: a Hugging Face causal LM (or a PEFT / DDP wrapper of one) and its tokenizer.
        batch_size: at most this many sequences per forward pass (short contexts may share one).
        max_tokens_per_batch: at most this many tokens (sequences x width, padding included) per pass;
            a single longer item runs alone.
        max_length: the model's context length; ``None``: from the config like lm-eval.
        on_overlong: ``"error"``: one ValueError naming the over-long items; ``"truncate"``: drop context
            tokens from the left exactly like lm-eval.
        accelerator: an ``accelerate.Accelerator``; with several processes the work is sharded and every
            process gets the full, ordered result.
        progress: show a tqdm bar (rate, ETA) on the main process.
        add_bos_token: HFLM's argument of the same name (``None``: the tokenizer's default).
        prefix_sharing: run each distinct context once, its continuations as a prefix tree (4-D mask).
        boundary: where a continuation starts (:data:`~forgetlab.scoring.encoding.Boundary`; lm-eval's rule by default).
        onednn_linears: on CPUs where MKL is slow, linears go through oneDNN with bit-identical results
            (:mod:`forgetlab.onednn`); ``False`` keeps PyTorch's own path everywhere (the same numbers, slower there).
    """

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        *,
        batch_size: int = 64,
        max_tokens_per_batch: int = 2048,
        max_length: int | None = None,
        on_overlong: OnOverlong = "error",
        accelerator: Any = None,
        progress: bool = True,
        add_bos_token: bool | None = None,
        prefix_sharing: bool = True,
        boundary: Boundary = "lm_eval",
        onednn_linears: bool = True,
    ) -> None:
        if on_overlong not in ("error", "truncate"):
            raise ValueError(f"on_overlong must be 'error' or 'truncate', got {on_overlong!r}")
        if batch_size < 1 or max_tokens_per_batch < 1:
            raise ValueError("batch_size and max_tokens_per_batch must be positive")
        self.model = model
        self.tokenizer = tokenizer
        self.batch_size = int(batch_size)
        self.max_tokens_per_batch = int(max_tokens_per_batch)
        self.on_overlong: OnOverlong = on_overlong
        self.accelerator = accelerator
        self.progress = progress
        self.encoder = RequestEncoder(tokenizer, add_bos_token, boundary)
        self.onednn_linears = onednn_linears
        core = unwrap_model(model)
        self.max_length = int(max_length) if max_length else resolve_max_length(core.config, tokenizer)
        self._logits_to_keep = "logits_to_keep" in forward_params(core)
        cfg = getattr(core.config, "text_config", None) or core.config
        self.prefix_sharing = prefix_sharing and accepts_custom_masks(core, 0)  # items beyond a window: checked per item
        self._window: int | None = getattr(cfg, "sliding_window", None)
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        self._pad_id = int(pad) if pad is not None else 0

    # ------------------------------------------------------------------ public API
    def encode_pair(self, context: str, continuation: str) -> tuple[list[int], list[int]]:
        """:func:`encode_pair` with this scorer's tokenizer settings."""
        return self.encoder.pair(context, continuation)

    def loglikelihood(self, requests: Sequence[tuple[str, str]], names: Sequence[str] | None = None,
                      desc: str | None = None) -> list[ScoredRequest]:
        """``log p(continuation | context)`` per request, in request order (lm-eval ``loglikelihood``).

        ``names`` label the requests in error messages (default ``request <i>``).
        """
        jobs, job_of, mine = self._prepare(requests, names)
        scores = self._gather(self._score_rows(mine, desc or "loglikelihood"))
        results = [ScoredRequest(*scores[j], n_tokens=len(jobs[j][1])) for j in range(len(jobs))]
        return [results[j] for j in job_of]

    def token_scores(self, requests: Sequence[tuple[str, str]], names: Sequence[str] | None = None,
                     desc: str | None = None) -> list[TokenScores]:
        """:class:`TokenScores` of every continuation token, per request, in request order (the same
        tokenisation, planning and forward passes as :meth:`loglikelihood`)."""
        _, job_of, mine = self._prepare(requests, names)
        found = self._gather(self._token_rows(mine, desc or "token scores"))
        return [found[j] for j in job_of]

    def hidden_states(self, texts: Sequence[str], layers: Sequence[int]) -> dict[int, np.ndarray]:
        """The hidden state of each text's last token at ``layers``: ``{layer: (n_texts, hidden)}`` float32.

        Layers index HF's ``output_hidden_states`` tuple: 0 = embeddings, L = last layer, negative
        from the end (-1 = last layer, -5 = fifth from last). Texts are tokenised like lm-eval's
        ``tok_encode``; over-long texts follow ``on_overlong`` (truncate keeps the last tokens).
        """
        config = unwrap_model(self.model).config
        n_states = num_hidden_layers(self.model) + 1
        index = {}
        for layer in layers:
            if not -n_states <= layer < n_states:
                raise ValueError(f"layer {layer} out of range for a model with {n_states - 1} layers")
            index[layer] = layer % n_states
        seqs = [self._fit_text(i, t) for i, t in enumerate(texts)]
        owner = self._shard([len(s) for s in seqs])
        mine = [i for i, rank in enumerate(owner) if rank == self._rank]
        found = self._gather(self._hidden_rows(seqs, mine, sorted(set(index.values()))))
        width = int((getattr(config, "text_config", None) or config).hidden_size)
        return {
            layer: np.stack([found[i][idx] for i in range(len(texts))]).astype(np.float32)
            if texts
            else np.zeros((0, width), np.float32)
            for layer, idx in index.items()
        }

    # ------------------------------------------------------------------ planning
    def _prepare(
        self, requests: Sequence[tuple[str, str]], names: Sequence[str] | None
    ) -> tuple[list[tuple[tuple[int, ...], tuple[int, ...]]], list[int], list[Row]]:
        """Distinct jobs, request -> job, and this process's share of the rows to run."""
        if names is not None and len(names) != len(requests):
            raise ValueError(f"got {len(names)} names for {len(requests)} requests")
        jobs, job_of = self._encode_jobs(requests, names)
        groups = self._plan(jobs)
        owner = self._shard([sum(len(r.tokens) for r in group) for group in groups])
        return jobs, job_of, [row for group, rank in zip(groups, owner) if rank == self._rank for row in group]

    def _encode_jobs(
        self, requests: Sequence[tuple[str, str]], names: Sequence[str] | None
    ) -> tuple[list[tuple[tuple[int, ...], tuple[int, ...]]], list[int]]:
        """Distinct (context tokens, continuation tokens) jobs, after length checks; request -> job."""
        by_text: dict[tuple[str, str], int] = {}
        by_tokens: dict[tuple[tuple[int, ...], tuple[int, ...]], int] = {}
        jobs: list[tuple[tuple[int, ...], tuple[int, ...]]] = []
        job_of: list[int] = []
        overlong: list[str] = []
        for i, (context, continuation) in enumerate(requests):
            key = (context, continuation)
            if key not in by_text:
                name = names[i] if names is not None else f"request {i}"
                ctx, cont = self._fit(name, *self.encoder.pair(context, continuation), overlong)
                by_text[key] = by_tokens.setdefault((ctx, cont), len(by_tokens))
                if by_text[key] == len(jobs):
                    jobs.append((ctx, cont))
            job_of.append(by_text[key])
        if overlong:
            shown = "; ".join(overlong[:5]) + (f"; and {len(overlong) - 5} more" if len(overlong) > 5 else "")
            raise ValueError(
                f"{len(overlong)} request(s) over the limit of {self.max_length + 1} context + continuation "
                f"tokens (max_length {self.max_length}, +1 for the shifted target): {shown}. "
                "Shorten them or use on_overlong='truncate' (left truncation, as lm-eval does)."
            )
        return jobs, job_of

    def _fit(
        self, name: str, ctx: list[int], cont: list[int], overlong: list[str]
    ) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """Apply the length policy to one encoded request (lm-eval keeps the last max_length + 1 tokens)."""
        if not cont:
            raise ValueError(f"{name}: the continuation encodes to no tokens")
        if not ctx:
            raise ValueError(f"{name}: the context encodes to no tokens (it is only whitespace?)")
        total, limit = len(ctx) + len(cont), self.max_length
        if len(cont) > limit:
            raise ValueError(f"{name}: the continuation alone has {len(cont)} tokens, over the limit {limit}")
        if total > limit + 1:
            if self.on_overlong == "error":
                overlong.append(f"{name} has {total} tokens")
            else:
                log.warning("%s: %d tokens over the limit %d, truncating from the left", name, total, limit + 1)
                ctx = ctx[total - limit - 1 :]
        return tuple(ctx), tuple(cont)

    def _fit_text(self, i: int, text: str) -> list[int]:
        seq = self.encoder.encode(text)
        if not seq:
            raise ValueError(f"text {i} encodes to no tokens")
        if len(seq) > self.max_length:
            if self.on_overlong == "error":
                raise ValueError(f"text {i} has {len(seq)} tokens, over the model's maximum length {self.max_length}")
            seq = seq[-self.max_length :]
        return seq

    def _plan(self, jobs: Sequence[tuple[tuple[int, ...], tuple[int, ...]]]) -> list[list[Row]]:
        """The rows to run, grouped by context (a group is never split across processes)."""
        by_ctx: dict[tuple[int, ...], list[tuple[tuple[int, ...], int]]] = {}
        for j, (ctx, cont) in enumerate(jobs):
            by_ctx.setdefault(ctx, []).append((cont, j))
        groups = []
        for ctx, conts in by_ctx.items():
            depth = len(ctx) + max(len(c) for c, _ in conts) - 1
            if self.prefix_sharing and (self._window is None or depth < self._window):
                cap = max(depth, len(ctx) + min(self.max_tokens_per_batch, TREE_ROW_TOKENS))
                groups.append([tree_row(ctx, chunk) for chunk in chunks(conts, len(ctx), cap)])
            else:
                groups.append(plain_rows(ctx, conts))
        return groups

    # ------------------------------------------------------------------ processes
    @property
    def _world(self) -> int:
        return int(getattr(self.accelerator, "num_processes", 1) or 1)

    @property
    def _rank(self) -> int:
        return int(getattr(self.accelerator, "process_index", 0) or 0)

    @property
    def _is_main(self) -> bool:
        return self.accelerator is None or bool(self.accelerator.is_main_process)

    def _shard(self, costs: Sequence[int]) -> list[int]:
        return assign_ranks(costs, self._world) if self._world > 1 else [0] * len(costs)

    def _gather(self, partial: dict[int, Any]) -> dict[int, Any]:
        if self._world == 1:
            return partial
        from accelerate.utils import gather_object

        merged: dict[int, Any] = {}
        for part in gather_object([partial]):
            merged.update(part)
        return merged

    def _bar(self, total: int, desc: str) -> tqdm:
        return tqdm(
            total=total,
            desc=desc,
            unit="tok",
            unit_scale=True,
            leave=False,
            disable=not (self.progress and self._is_main),
        )

    # ------------------------------------------------------------------ forward passes
    @property
    def _device(self) -> torch.device:
        return next(unwrap_model(self.model).parameters()).device

    def _run(
        self, rows: list[Row], desc: str, moments: bool = False
    ) -> Iterator[tuple[dict[str, np.ndarray], list[int]]]:
        """Run rows in token-budget batches (eval + inference mode, progress bar).

        Per batch and target: ``logprob``, ``greedy`` (with ``moments`` also ``mu``, ``sigma``), its job.
        """
        model = unwrap_model(self.model)
        trees, plain = [r for r in rows if r.tree], [r for r in rows if not r.tree]
        planned = [
            *batches(trees, self.batch_size, self.max_tokens_per_batch, PACK_WIDTH),
            *batches(plain, self.batch_size, self.max_tokens_per_batch),
        ]
        tokens = sum(len(r.tokens) for r in rows)
        with _EvalMode(model, self._onednn(tokens)), self._bar(tokens, desc) as bar:
            for lines in planned:
                yield self._score_batch(model, lines, moments)
                bar.update(sum(len(r.tokens) for line in lines for r in line))

    def _onednn(self, tokens: int) -> bool:
        """Whether a call of ``tokens`` row tokens routes linears through oneDNN (worth its packing)."""
        return self.onednn_linears and tokens >= WORTH_PACKING_TOKENS

    def _score_rows(self, rows: list[Row], desc: str) -> dict[int, tuple[float, bool]]:
        """``{job: (summed logprob, is_greedy)}``."""
        totals: dict[int, list] = {}
        for stats, jobs in self._run(rows, desc):
            for job, lp, ok in zip(jobs, stats["logprob"].tolist(), stats["greedy"].tolist()):
                acc = totals.setdefault(job, [0.0, True])
                acc[0] += lp
                acc[1] = acc[1] and ok
        return {job: (lp, ok) for job, (lp, ok) in totals.items()}

    def _token_rows(self, rows: list[Row], desc: str) -> dict[int, TokenScores]:
        """``{job: TokenScores}``: every target of a job, in continuation order (one row holds them all)."""
        found: dict[int, list[int]] = {}
        columns: dict[str, list[np.ndarray]] = {"logprob": [], "greedy": [], "mu": [], "sigma": []}
        offset = 0
        for stats, jobs in self._run(rows, desc, moments=True):
            for i, job in enumerate(jobs):
                found.setdefault(job, []).append(offset + i)
            for key in columns:
                columns[key].append(stats[key])
            offset += len(jobs)
        if not found:
            return {}
        flat = {key: np.concatenate(parts) for key, parts in columns.items()}
        return {
            job: TokenScores(flat["logprob"][idx], flat["greedy"][idx], flat["mu"][idx], flat["sigma"][idx])
            for job, idx in found.items()
        }

    def _score_batch(
        self, model: Any, lines: list[list[Row]], moments: bool = False
    ) -> tuple[dict[str, np.ndarray], list[int]]:
        """One forward pass; per target: log p(token), whether it is the argmax, its job; with
        ``moments`` also the mean and std of log p over the vocabulary under p (Min-K%++)."""
        width = max(sum(len(r.tokens) for r in line) for line in lines)
        tree = lines[0][0].tree
        ids = np.full((len(lines), width), self._pad_id, dtype=np.int64)
        positions = np.zeros((len(lines), width), dtype=np.int64)
        allowed = np.zeros((len(lines), width, width), dtype=bool) if tree else None
        where: list[tuple[int, int]] = []
        tokens: list[int] = []
        jobs: list[int] = []
        for b, line in enumerate(lines):
            start = 0
            for row in line:
                end = start + len(row.tokens)
                ids[b, start:end] = row.tokens
                positions[b, start:end] = row.positions
                if allowed is not None:
                    allowed[b, start:end, start:end] = row.ancestors()
                for index, token, job in row.targets:
                    where.append((b, start + index))
                    tokens.append(token)
                    jobs.append(job)
                start = end
            if allowed is not None:  # padding attends to itself: no empty softmax rows
                allowed[b, range(start, width), range(start, width)] = True
        inputs = {"input_ids": torch.from_numpy(ids).to(self._device)}
        if allowed is not None:
            inputs["position_ids"] = torch.from_numpy(positions).to(self._device)
            inputs["attention_mask"] = additive_mask(torch.from_numpy(allowed), unwrap_model(model).dtype).to(self._device)
        with forward_autocast(self._device):
            logits = self._logits_at(model, inputs, where)
        picked = torch.log_softmax(logits.float(), dim=-1)
        target = torch.tensor(tokens, device=picked.device)
        stats = {
            "logprob": picked.gather(1, target[:, None])[:, 0],
            "greedy": picked.argmax(dim=-1) == target,
        }
        if moments:
            probs = picked.exp()
            stats["mu"] = (probs * picked).sum(-1)
            stats["sigma"] = (probs * (picked - stats["mu"][:, None]) ** 2).sum(-1).sqrt()
        return {key: value.cpu().numpy() for key, value in stats.items()}, jobs

    def _logits_at(self, model: Any, inputs: dict[str, torch.Tensor], where: list[tuple[int, int]]) -> torch.Tensor:
        """``[N, vocab]`` logits at the ``(line, position)`` pairs only (:func:`forgetlab.models.logits_at`)."""
        rows = torch.tensor([b for b, _ in where], device=self._device)
        cols = torch.tensor([t for _, t in where], device=self._device)
        return logits_at(model, rows, cols, **inputs, use_cache=False)

    def _hidden_rows(
        self, seqs: list[list[int]], mine: list[int], states: list[int]
    ) -> dict[int, dict[int, np.ndarray]]:
        """``{text index: {hidden-state number: vector}}`` of the last token, right-padded batches."""
        rows = [Row(seqs[i], [], [], targets=[(len(seqs[i]) - 1, 0, i)], tree=False) for i in mine]
        found: dict[int, dict[int, np.ndarray]] = {}
        model = unwrap_model(self.model)
        tokens = sum(len(r.tokens) for r in rows)
        with _EvalMode(model, self._onednn(tokens)), self._bar(tokens, "hidden states") as bar:
            for lines in batches(rows, self.batch_size, self.max_tokens_per_batch):
                batch = [line[0] for line in lines]
                ids = np.full((len(batch), max(len(r.tokens) for r in batch)), self._pad_id, dtype=np.int64)
                for b, row in enumerate(batch):
                    ids[b, : len(row.tokens)] = row.tokens
                extra = {"logits_to_keep": 1} if self._logits_to_keep else {}
                with forward_autocast(self._device):
                    out = model(torch.from_numpy(ids).to(self._device), output_hidden_states=True, use_cache=False, **extra)
                for b, row in enumerate(batch):
                    index, _, text = row.targets[0]
                    found[text] = {s: out.hidden_states[s][b, index].float().cpu().numpy() for s in states}
                bar.update(sum(len(r.tokens) for r in batch))
        return found


