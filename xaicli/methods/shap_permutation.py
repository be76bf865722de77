"""Permutation SHAP: Shapley values as the average marginal contribution over orderings.

Strumbelj & Kononenko 2014. The game is the mean of one game per background row
(v(S) = 1/B sum_b f(x_S, z_b[~S])), and so are its Shapley values; every background row
walks orderings of its own, drawn independently, so the sampling errors of the B games
average out instead of being repeated B times by one shared ordering. Each ordering is
walked forwards and backwards (antithetic pairs, which cancel much of the variance); the
contributions telescope, so base + sum(phi) = f(x) holds exactly for any number of
orderings. Orderings come from the row's own random stream (seed, row position).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from xaicli.methods.base import (
    Attributions,
    BoolArray,
    FloatArray,
    IntArray,
    PredictFn,
    evaluate_in_blocks,
    predict_rows,
    row_rng,
)
from xaicli.methods.registry import Block, MethodInputError, MethodSpec, RunInputs, Setup, register
from xaicli.methods.sampling_error import (
    FIRST_ROUND_PAIRS,
    MIN_PAIRS,
    TargetError,
    effective_target,
    next_round,
    parse_target_error,
    pooled_standard_error,
)
from xaicli.methods.shap_common import (
    HybridFn,
    check_background,
    default_n_samples,
    reduce_over_coalitions,
)
from xaicli.methods.shap_tree_walks import TreeWalks


def explain_permutation(
    predict: PredictFn,
    X: FloatArray,
    *,
    background: FloatArray,
    row_index: IntArray,
    seed: int = 0,
    n_samples: int | None = None,
    max_eval_rows: int = 200_000,
    hybrids: HybridFn | TreeWalks | None = None,
    errors: bool = False,
    target: TargetError | None = None,
) -> Attributions:
    """Permutation SHAP values (n_rows, n_outputs, M).

    n_samples: coalitions evaluated per row (default 2M + 2048); each antithetic pair of
    orderings costs 2 (M - 1), so ``max(1, n_samples // (2 (M - 1)))`` pairs are drawn,
    or with a ``target`` at most that many.
    errors: also estimate each value's standard error (``Attributions.standard_errors``)
    from the spread of the pairs within each background row's game (needs 2 pairs).
    target: sample each row in rounds until every standard error is at most the target
    (``Attributions.converged`` says which rows got there within the budget).
    hybrids: the model's outputs on hybrid rows from its structure: a perceptron's layers
    (``HybridFn``), or a boosted classifier's trees walked along each ordering
    (``TreeWalks``); None: hybrid rows are built and ``predict`` is called.
    """
    check_background(X, background)
    n_rows, m = X.shape
    if m < 2:
        raise ValueError(f"permutation SHAP needs at least 2 features, got {m}")
    budget = default_n_samples(m) if n_samples is None else int(n_samples)
    walk = _Walk(predict, X, background, row_index, seed, max_eval_rows, hybrids)
    max_pairs = max(1, budget // (2 * (m - 1)))
    if target is not None:
        return walk.to_target(target, max_pairs)
    rows = np.arange(n_rows)
    if not errors:
        values = walk.reduce(rows, max_pairs, lambda orders: orders.mean(axis=(1, 3)))
        return walk.attributions(values.transpose(0, 2, 1))
    stats = walk.reduce(rows, max_pairs, _mean_and_spread)
    values = stats[..., 0, 0]  # (g, M, K): the same mean as without errors, to the last bit
    standard_errors = pooled_standard_error(stats[..., 2, :], max_pairs)
    return walk.attributions(
        values.transpose(0, 2, 1), standard_errors=standard_errors.transpose(0, 2, 1)
    )


def _mean_and_spread(orders: FloatArray) -> FloatArray:
    """(g, 2P, M, B, K) contributions of the orderings of P antithetic pairs -> (g, M, K, 3, B):
    the mean over all orderings (as without errors, for identical values), and each
    background row's mean and sum of squared deviations over its pairs."""
    pairs = (orders[:, 0::2] + orders[:, 1::2]) / 2  # the pairs are the independent draws
    mean = pairs.mean(axis=1)
    spread = np.square(pairs - mean[:, None]).sum(axis=1)
    overall = np.broadcast_to(orders.mean(axis=(1, 3))[:, :, None, :], mean.shape)
    return np.stack([overall, mean, spread], axis=-1).transpose(0, 1, 3, 4, 2)


class _Walk:
    """The orderings of rows, walked forwards and backwards, in rounds from each row's
    own random stream: a row's first P pairs are the same whether drawn at once or in
    rounds."""

    def __init__(self, predict, X, background, row_index, seed, max_eval_rows, hybrids):
        self.predict, self.X, self.background = predict, X, background
        self.row_index, self.max_eval_rows, self.hybrids = row_index, max_eval_rows, hybrids
        self.n_features = X.shape[1]
        self.n_background = background.shape[0]
        self.streams = [row_rng(seed, int(r)) for r in row_index]
        self.f_background = evaluate_in_blocks(predict, background, max_rows=max_eval_rows)
        self.fx = predict_rows(predict, X, row_index)  # (n, K)

    def attributions(self, values: FloatArray, **more) -> Attributions:
        base = self.f_background.mean(axis=0)
        return Attributions(
            values=values,
            base_values=np.broadcast_to(base, self.fx.shape).copy(),
            predictions=self.fx,
            **more,
        )

    def reduce(
        self, rows: IntArray, n_pairs: int, summarise: Callable[[FloatArray], FloatArray]
    ) -> FloatArray:
        """``summarise(orders)`` of the next ``n_pairs`` pairs of each of ``rows`` (positions
        in X), where orders (g, 2 n_pairs, M, B, K) are the contributions of each ordering,
        an antithetic pair's two orderings side by side."""
        m, n_background = self.n_features, self.n_background
        n_orders = 2 * n_pairs
        prefix = np.arange(1, m)  # prefixes of size 1..M-1; sizes 0 and M are f(z_b) and f(x)
        f_background, fx = self.f_background, self.fx[rows]
        blocks: dict[int, IntArray] = {}

        def ranks_of(r: int) -> IntArray:
            """(P, B, M): position of each feature in each ordering of each background row;
            the reverse ordering of an antithetic pair has ranks M - 1 - rank."""
            rng = self.streams[r]
            forward = np.argsort(np.argsort(rng.random((n_pairs, n_background, m)), axis=2), axis=2)
            ranks = np.empty((n_orders, n_background, m), dtype=np.int64)
            ranks[0::2] = forward
            ranks[1::2] = m - 1 - forward
            return ranks

        def masks_of(block: slice) -> BoolArray:
            ranks = np.stack([ranks_of(int(r)) for r in rows[block]])
            blocks[block.start] = ranks
            # (g, P, M-1, B, M) -> one coalition slot per (ordering, prefix size)
            masks = ranks[:, :, None, :, :] < prefix[None, None, :, None, None]
            return masks.reshape(len(ranks), n_orders * (m - 1), n_background, m)

        def contributions(block: slice, v: FloatArray, ranks: IntArray | None = None) -> FloatArray:
            """v (g, P (M-1), B, K): the outputs of the block's coalition slots."""
            if ranks is None:
                ranks = blocks.pop(block.start)  # (g, P, B, M)
            g, n_out = v.shape[0], v.shape[-1]
            v = v.reshape(g, n_orders, m - 1, n_background, n_out)
            chain = np.concatenate(
                [
                    np.broadcast_to(
                        f_background[None, None, None], (g, n_orders, 1, n_background, n_out)
                    ),
                    v,
                    np.broadcast_to(
                        fx[block][:, None, None, None, :], (g, n_orders, 1, n_background, n_out)
                    ),
                ],
                axis=2,
            )  # (g, P, M+1, B, K): value of each prefix size
            steps = np.diff(chain, axis=2)  # (g, P, M, B, K): step at each rank
            # feature i receives the step at its rank
            contrib = np.take_along_axis(steps, ranks.transpose(0, 1, 3, 2)[..., None], axis=2)
            return summarise(contrib)

        if isinstance(self.hybrids, TreeWalks):
            per_row = n_orders * (m - 1) * n_background  # outputs, as rows sent to a model
            g = max(1, self.max_eval_rows // per_row)
            return self._walk_trees(self.hybrids, rows, g, ranks_of, contributions)
        return reduce_over_coalitions(
            self.predict,
            self.X[rows],
            self.background,
            masks_of,
            n_orders * (m - 1),
            contributions,
            row_index=self.row_index[rows],
            max_eval_rows=self.max_eval_rows,
            hybrids=self.hybrids,
        )

    def _walk_trees(
        self,
        walks: TreeWalks,
        rows: IntArray,
        block_rows: int,
        ranks_of: Callable[[int], IntArray],
        contributions: Callable[..., FloatArray],
    ) -> FloatArray:
        """As ``reduce``, with the outputs along each ordering from the trees' walks,
        ``block_rows`` rows at a time."""
        m = self.n_features
        results = []
        for start in range(0, len(rows), block_rows):
            block = slice(start, min(start + block_rows, len(rows)))
            ranks = np.stack([ranks_of(int(r)) for r in rows[block]])  # (g, 2P, B, M)
            orders = np.argsort(ranks, axis=-1)  # the players in each ordering's order
            v = walks(self.X[rows[block]], orders)  # (g, 2P, M-1, B, K)
            g, n_orders = v.shape[:2]
            v = v.reshape(g, n_orders * (m - 1), self.n_background, v.shape[-1])
            results.append(contributions(block, v, ranks))
        return np.concatenate(results, axis=0)

    def to_target(self, target: TargetError, max_pairs: int) -> Attributions:
        """Rounds of pairs until each row's errors are within the target or it has drawn
        ``max_pairs`` pairs."""
        n_rows, m, n_out = len(self.row_index), self.n_features, self.fx.shape[1]
        base = self.f_background.mean(axis=0)[None]
        thresholds = target.thresholds(self.fx, base, self.f_background)  # (n, K)
        # per row, feature, output and background row: the pairs' mean and sum of squared
        # deviations, merged round by round (Chan et al.'s update: no cancellation)
        mean = np.zeros((n_rows, m, n_out, self.n_background))
        spread = np.zeros_like(mean)
        drawn = np.zeros(n_rows, dtype=np.int64)
        more = np.full(n_rows, min(FIRST_ROUND_PAIRS, max_pairs), dtype=np.int64)
        while (more > 0).any():
            for size in np.unique(more[more > 0]):
                rows = np.flatnonzero(more == size)
                stats = self.reduce(rows, int(size), _mean_and_spread)
                before = drawn[rows][:, None, None, None].astype(np.float64)
                total = before + size
                delta = stats[..., 1, :] - mean[rows]
                mean[rows] += delta * (size / total)
                spread[rows] += stats[..., 2, :] + np.square(delta) * (before * size / total)
                drawn[rows] += size
            standard_errors = self._standard_errors(spread, drawn)  # (n, M, K)
            with np.errstate(divide="ignore", invalid="ignore"):
                ratio = (standard_errors.max(axis=1) / thresholds).max(axis=1)
            ratio = np.where(np.isnan(ratio), 0.0, ratio)  # 0 / 0: no error, none accepted
            more = np.where(more > 0, next_round(drawn, ratio, max_pairs), 0)
        return self.attributions(
            mean.mean(axis=-1).transpose(0, 2, 1),
            standard_errors=standard_errors.transpose(0, 2, 1),
            converged=ratio <= 1.0,
        )

    @staticmethod
    def _standard_errors(spread: FloatArray, drawn: IntArray) -> FloatArray:
        """(n, M, K) from each row's sums of squared deviations (n, M, K, B)."""
        out = np.zeros(spread.shape[:3])
        for count in np.unique(drawn):
            if count >= 2:  # one pair has no spread: its error is unknown, taken as 0
                rows = drawn == count
                out[rows] = pooled_standard_error(spread[rows], int(count))
        return out


@dataclass(frozen=True)
class PermutationParams:
    n_samples: int | None = None  # None: default_n_samples(M), and the default target
    errors: bool = False  # write each value's standard error
    target_error: str | None = None  # "0.01" or "5%"; None: see effective_target


def pairs_for(n_features: int, n_samples: int | None) -> int:
    """Antithetic pairs of orderings the budget pays for (at least one)."""
    budget = default_n_samples(n_features) if n_samples is None else int(n_samples)
    return max(1, budget // (2 * (n_features - 1)))


def run_target(params: PermutationParams, n_features: int) -> TargetError | None:
    """The target a run samples to; none when the budget holds too few pairs for a spread
    (only the default target can meet that: explicit ones are refused by _prepare)."""
    target = effective_target(params.n_samples, params.target_error)
    if target is not None and pairs_for(n_features, params.n_samples) < MIN_PAIRS:
        return None
    return target


def _compute(block: Block) -> Attributions:
    params = block.params
    return explain_permutation(
        block.predict,
        block.X,
        background=block.background,
        row_index=block.row_index,
        seed=block.seed,
        n_samples=params.n_samples,
        max_eval_rows=block.max_eval_rows,
        hybrids=block.aid,
        errors=params.errors,
        target=run_target(params, block.X.shape[1]),
    )


def _prepare(params: PermutationParams, inputs: RunInputs) -> Setup:
    n_features = len(inputs.feature_names)
    if params.target_error is not None:
        try:
            parse_target_error(params.target_error)
        except ValueError as exc:
            raise MethodInputError(f"--target-error: {exc}; e.g. 0.01, 5% or auto") from None
    if params.errors or params.target_error is not None:
        least = 2 * MIN_PAIRS * (n_features - 1)
        if pairs_for(n_features, params.n_samples) < MIN_PAIRS:
            option = "--errors" if params.errors else "--target-error"
            raise MethodInputError(
                f"{option} needs two antithetic pairs of orderings per row: --n-samples of "
                f"at least {least} for {n_features} features; got {params.n_samples}"
            )
    return Setup()


def _sampling(params: PermutationParams, n_features: int) -> tuple[bool, bool]:
    """(standard errors written, ``converged`` written): a run to a target writes both."""
    target = run_target(params, n_features) is not None
    return params.errors or target, target


register(
    MethodSpec(
        "shap",
        "permutation",
        PermutationParams,
        _compute,
        _prepare,
        aid="hybrids",
        sampling=_sampling,
    )
)
