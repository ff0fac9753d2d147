"""Where the columns of a mixed table sit in the model's space, and their blocks of outcomes.

``TableLayout`` maps table rows (codes, see ``_tabular``) to model space and
back; ``Blocks`` holds the categorical distributions over levels (and over
an integer column's frequent values) that the decoder's logits define.
"""

import torch
from torch import nn

# Relative width below which an integer's interval is measured by the data
# map's slope instead of its rounded ends (float64 keeps about 1e-16).
_RESOLVED = 1e-9


class Blocks(nn.Module):
    """Consecutive blocks of entries of given sizes, each a distribution over its entries.

    Entries are stored flat, block after block; a padded view of shape
    (n_blocks, max_size) gives every block its own softmax, argmax and draw.
    """

    def __init__(self, sizes):
        super().__init__()
        self.sizes, self.n_blocks, self.n_entries = list(sizes), len(sizes), sum(sizes)
        self.max_size = max(sizes, default=0)
        block = [b for b, n in enumerate(sizes) for _ in range(n)]
        position = [v for n in sizes for v in range(n)]
        for name, values in [
            ("block", block), ("offsets", [sum(sizes[:b]) for b in range(len(sizes))]),
            ("last", [sum(sizes[: b + 1]) - 1 for b in range(len(sizes))]),
            ("padded", [b * self.max_size + v for b, v in zip(block, position)]),
        ]:
            self.register_buffer(name, torch.tensor(values, dtype=torch.long), persistent=False)

    def view_padded(self, values, fill):
        """(..., n_entries) -> (..., n_blocks, max_size), ``fill`` in the padding."""
        padded = values.new_full((*values.shape[:-1], self.n_blocks * self.max_size), fill)
        return padded.index_copy(-1, self.padded, values).unflatten(-1, (self.n_blocks, self.max_size))

    def log_softmax(self, logits):
        """Each entry's log-probability within its block."""
        if not self.n_blocks:
            return logits
        return self.view_padded(logits, -torch.inf).log_softmax(-1).flatten(-2).index_select(-1, self.padded)

    def argmax(self, values):
        """The entry of highest value in each block, shape (..., n_blocks)."""
        return self.view_padded(values, -torch.inf).argmax(-1)

    def draw(self, probs, generator=None):
        """One entry per block drawn with the block's probabilities, shape (..., n_blocks)."""
        if not self.n_blocks:
            return probs.new_zeros(probs.shape[:-1] + (0,), dtype=torch.long)
        blocks = self.view_padded(probs, 0.0)
        return torch.multinomial(blocks.reshape(-1, self.max_size), 1, generator=generator).reshape(blocks.shape[:-1])

    def one_hot(self, index, dtype):
        """Indicators of one entry per block (index of shape (..., n_blocks)), shape (..., n_entries)."""
        out = torch.zeros((*index.shape[:-1], self.n_entries), dtype=dtype, device=index.device)
        return out.scatter_(-1, self.offsets + index, 1.0)


class TableLayout(nn.Module):
    """Where each column of a mixed table sits in model space, and the blocks of its categories.

    Model space is ``[numeric | indicators]``: the real and integer columns
    in table order, then one block of ``n_levels`` indicators per
    categorical column (one-hot; all 0 where the entry is missing). The
    decoder gives the numeric likelihood's parameters, one logit per
    indicator, and for each integer column with frequent values (``spikes``)
    one logit per such value and one for the rest.

    Parameters
    ----------
    kinds : list of {'real', 'integer', 'categorical'}
        One per table column.
    n_levels : list of int
        Levels of each column (0 for numeric ones).
    spikes : list of list of float, default=None
        For each column, its frequent values (integer columns only; see
        ``frequent_values``), sorted.
    """

    def __init__(self, kinds, n_levels, spikes=None):
        super().__init__()
        spikes = spikes or [[] for _ in kinds]
        if len(n_levels) != len(kinds) or len(spikes) != len(kinds):
            raise ValueError("kinds, n_levels and spikes need one entry per column.")
        self.kinds, self.n_levels_of = list(kinds), list(n_levels)
        numeric = [j for j, k in enumerate(kinds) if k != "categorical"]
        categorical = [j for j, k in enumerate(kinds) if k == "categorical"]
        integer_columns = [j for j in numeric if kinds[j] == "integer"]
        self.n_numeric, self.n_categorical = len(numeric), len(categorical)
        self.levels = Blocks([n_levels[j] for j in categorical])
        self.n_indicators = self.levels.n_entries
        self.width = self.n_numeric + self.n_indicators
        self.n_integer = len(integer_columns)
        self.n_real = self.n_numeric - self.n_integer
        # Numeric columns with frequent values (integer ones, and real ones listed in
        # discrete_features): a block of one logit per value and one for the rest, in
        # the columns' order.
        spiked = [c for c, j in enumerate(numeric) if spikes[j]]
        self.spikes = Blocks([len(spikes[numeric[c]]) + 1 for c in spiked])
        self.n_logits = self.n_indicators + self.spikes.n_entries
        table = torch.full((self.spikes.n_blocks, self.spikes.max_size), torch.nan, dtype=torch.float64)
        for b, c in enumerate(spiked):
            table[b, : len(spikes[numeric[c]])] = torch.tensor(spikes[numeric[c]], dtype=torch.float64)
        self.register_buffer("spike_table", table, persistent=False)  # NaN: the rest, and padding
        block_of = {c: b for b, c in enumerate(spiked)}
        integer = [numeric.index(j) for j in integer_columns]
        real_index = [c for c, j in enumerate(numeric) if kinds[j] == "real"]
        real_spiked = [c for c in real_index if c in block_of]
        self.n_real_spiked = len(real_spiked)
        self.n_integer_spiked = sum(c in block_of for c in integer)
        for name, values, dtype in [
            ("numeric", numeric, torch.long), ("categorical", categorical, torch.long),
            ("integer", integer, torch.long),
            ("real", [kinds[j] == "real" for j in numeric], torch.bool),
            ("real_index", real_index, torch.long),
            ("spike_block", [block_of.get(c, -1) for c in integer], torch.long),
            ("spiked", spiked, torch.long),
            # The real columns with frequent values: where they sit among the numeric
            # columns, among the real ones, and their blocks.
            ("real_spiked", real_spiked, torch.long),
            ("real_spiked_among_real", [real_index.index(c) for c in real_spiked], torch.long),
            ("real_spike_block", [block_of[c] for c in real_spiked], torch.long),
        ]:
            self.register_buffer(name, torch.tensor(values, dtype=dtype), persistent=False)

    @classmethod
    def of_reals(cls, n_columns):
        """The layout of an array: every column real (the model of the plain numeric path)."""
        return cls(["real"] * n_columns, [0] * n_columns)

    def numeric_of(self, x):
        """The numeric columns of table rows x (all of them, in place, without categorical ones)."""
        return x if not self.n_categorical else x.index_select(-1, self.numeric)

    def to_model(self, x, data_map):
        """``ModelRows`` parts of table rows x (codes, NaN where missing) through the numeric data map.

        Returns ``(numeric, indicators, log_det, mask, bins)``; ``bins`` holds,
        per integer entry, the lower end of its interval (x - 1/2, x + 1/2)
        in model space, the index of its value among the column's frequent
        values (-1 if none) and the log of the interval's width in model
        space; then, per entry of a real column with frequent values,
        ``(0, index, 0)``. Float64 of shape (n, n_integer + n_real_spiked, 3),
        None when there are neither.
        """
        missing = torch.isnan(x)
        observed = None if not missing.any() else ~missing
        numeric = self.numeric_of(x)
        numeric_observed = None if observed is None else self.numeric_of(observed)
        jacobian, found = self._jacobian_entries(numeric, numeric_observed)
        y, log_det = data_map(numeric, jacobian)
        bins = None
        if self.n_integer:
            values = numeric.index_select(1, self.integer).to(torch.float64).nan_to_num(0.0)
            ends = []
            for shift in (-0.5, 0.5):
                moved = numeric.to(torch.float64).index_copy(1, self.integer, values + shift)
                ends.append(data_map(moved)[0].index_select(1, self.integer))
            low, high = ends
            # The interval's width in model space, from its ends while float64
            # resolves it; where the map flattens (a power transform far in a
            # heavy tail) the ends round together, and the map's slope at the
            # integer times 1 takes over.
            slope = data_map.log_slopes(numeric.to(torch.float64).index_copy(1, self.integer, values))
            resolved = (high - low) > _RESOLVED * (high.abs() + low.abs() + 1.0)
            log_width = torch.where(resolved, torch.log(high - low), slope.index_select(1, self.integer))
            bins = torch.stack([low, self._spike_index(values, self.spike_block), log_width], dim=-1)
        if found is not None:
            zeros = torch.zeros_like(found)
            real_bins = torch.stack([zeros, found, zeros], dim=-1)
            bins = real_bins if bins is None else torch.cat([bins, real_bins], dim=1)
        indicators, mask = x.new_zeros((len(x), self.n_indicators)), None
        if self.n_categorical:
            codes = x.index_select(1, self.categorical)
            present = ~torch.isnan(codes)
            positions = (self.levels.offsets + codes.nan_to_num(0.0).long()).clamp(max=self.n_indicators - 1)
            indicators = indicators.scatter_(1, positions, present.to(x.dtype))
        if observed is not None:
            y = y.masked_fill(~numeric_observed, 0.0)
            mask = numeric_observed
            if self.n_categorical:
                mask = torch.cat([mask, present.index_select(1, self.levels.block)], dim=1)
        return y, indicators, log_det, mask, bins

    def entry_log_det(self, x, data_map):
        """Each column's term of ``to_model``'s log_det, shape (n, n_columns), float64.

        The data map's log-slope at each real entry with a density (observed,
        off a frequent value); 0 for the other entries and for integer and
        categorical columns, whose probabilities are masses.
        """
        numeric = self.numeric_of(x)
        jacobian, _ = self._jacobian_entries(numeric, ~torch.isnan(numeric))
        slopes = torch.where(jacobian, data_map.log_slopes(numeric.nan_to_num(0.0)), 0.0)
        return x.new_zeros(x.shape, dtype=torch.float64).index_copy(1, self.numeric, slopes)

    def _jacobian_entries(self, numeric, numeric_observed):
        """Which numeric entries have a Jacobian (None: all), and the real spiked entries' frequent values (``_spike_index``).

        Only observed real entries off a frequent value have one: the
        probability of an integer, or of a real column's frequent value, is a mass.
        """
        jacobian = numeric_observed
        if self.n_integer or self.n_real_spiked:
            jacobian = self.real.expand_as(numeric) if numeric_observed is None else numeric_observed & self.real
        found = None
        if self.n_real_spiked:
            values = numeric.index_select(1, self.real_spiked).to(torch.float64)
            # A real value is its frequent value to float32's precision: the same data
            # in float32 and float64 find the same values.
            found = self._spike_index(values, self.real_spike_block, torch.float32)
            off_spike = torch.ones_like(jacobian).index_copy(1, self.real_spiked, found < 0)
            jacobian = jacobian & off_spike
        return jacobian, found

    def _spike_index(self, values, blocks, precision=torch.float64):
        """Index of each entry's value among its column's frequent values (block ``blocks[c]``), -1 if not one or missing.

        Values and frequent values are compared in ``precision``.
        """
        index = torch.full_like(values, -1.0)
        for c, b in enumerate(blocks.tolist()):
            if b < 0:
                continue
            spikes = self.spike_table[b, : self.spikes.sizes[b] - 1].to(precision)
            column = values[:, c].to(precision).contiguous()
            found = torch.searchsorted(spikes, column).clamp(max=len(spikes) - 1)
            index[:, c] = torch.where(spikes[found] == column, found.to(values.dtype), -1.0)
        return index

    def to_codes(self, numeric, probs):
        """Table codes from data-space numeric values and level probabilities (or indicators), float64.

        Integer columns are rounded; a block becomes its most probable level.
        """
        numeric = numeric.to(torch.float64)
        if self.n_integer:
            numeric = numeric.index_copy(-1, self.integer, numeric.index_select(-1, self.integer).round())
        if not self.n_categorical:
            return numeric
        out = numeric.new_empty((*numeric.shape[:-1], len(self.kinds)))
        out = out.index_copy(-1, self.numeric, numeric)
        return out.index_copy(-1, self.categorical, self.levels.argmax(probs).to(torch.float64))
