"""Which category a question belongs to: complement naive Bayes (Rennie et al., 2003) over sparse features.

Trained at index build on the knowledge base's own texts (titles, sample questions, keywords, summaries, the body's
parts), the residents' messages of knowledge/asked.jsonl, and the everyday questions as a class of their own; the
search trains a second one, about fundraising or not. Each training text's features are log-damped, idf-weighted
and length-normed (a text may weigh as several); a class is described by the features of every *other* class (its
complement), which keeps small classes from being drowned by large ones. Pure Python: a query touches only its
own features.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping


class CategoryModel:
    def __init__(
        self, samples: Iterable[tuple[str, Mapping[str, float]] | tuple[str, Mapping[str, float], float]],
        alpha: float = 1.0, temperature: float = 1.0,
    ) -> None:
        """`samples`: (label, feature counts) per training text, or (label, feature counts, weight): a text of
        weight 3 counts as three copies of it; `temperature` sharpens the probabilities."""
        docs = [(s[0], s[1], s[2] if len(s) > 2 else 1.0) for s in samples if s[1]]
        self.temperature = temperature
        df: Counter[str] = Counter()
        for _, feats, weight in docs:
            for f in feats:
                df[f] += weight
        n = sum(weight for *_, weight in docs)
        self.idf = {f: math.log(1 + n / c) for f, c in df.items()}
        per_class: dict[str, dict[str, float]] = {}
        total: dict[str, float] = {}
        for label, feats, weight in docs:  # one pass adds each text's vector to its class and to the total
            own = per_class.setdefault(label, {})
            for f, x in self._vector(feats).items():
                x *= weight
                own[f] = own.get(f, 0.0) + x
                total[f] = total.get(f, 0.0) + x
        self.labels = sorted(per_class)
        self.alpha = alpha
        vocab = len(total)
        grand = sum(total.values())
        self.total = total
        # log(total + α) per feature, and per feature the classes that hold it with how much that log changes
        # when the class's own share is taken out: a query then touches only its features' classes
        self.log_total = {f: math.log(t + alpha) for f, t in total.items()}
        self.owners: dict[str, list[tuple[str, float]]] = {}
        # log of each class's complement normaliser, and the sum over the vocabulary of its features' |weights|
        # (Σ log(total − own + α) = Σ log(total + α) − Σ over the class's features of its delta)
        self.log_z: dict[str, float] = {}
        self.norm: dict[str, float] = {}
        base = sum(self.log_total.values())
        for c in self.labels:
            own = per_class[c]
            deltas = 0.0
            for f, v in own.items():
                delta = self.log_total[f] - math.log(total[f] - v + alpha)
                self.owners.setdefault(f, []).append((c, delta))
                deltas += delta
            log_z = math.log(grand - sum(own.values()) + alpha * vocab)
            self.log_z[c] = log_z
            self.norm[c] = vocab * log_z - (base - deltas)  # every complement weight is log(θ) < 0, so |w| = -w

    def _vector(self, feats: Mapping[str, float]) -> dict[str, float]:
        vec = {f: math.log1p(v) * self.idf.get(f, 0.0) for f, v in feats.items()}
        length = math.sqrt(sum(x * x for x in vec.values())) or 1.0
        return {f: x / length for f, x in vec.items() if x}

    def fits(self, feats: Mapping[str, float]) -> dict[str, float]:
        """Per class, the weighted log-likelihood of the text under the class's complement-derived weights
        (higher is better)."""
        vec = {f: x for f, x in self._vector(feats).items() if f in self.total}
        # Σ x·(log z_c − log(total − own_c + α)) = log z_c·Σx − Σ x·log(total + α) + Σ over c's features x·delta
        mass = sum(vec.values())
        common = sum(x * self.log_total[f] for f, x in vec.items())
        fit = {c: self.log_z[c] * mass - common for c in self.labels}
        for f, x in vec.items():
            for c, delta in self.owners[f]:
                fit[c] += x * delta
        return fit

    def scores(self, feats: Mapping[str, float]) -> dict[str, float]:
        """Per class, how well the text fits it (higher is better; comparable across classes of one text)."""
        fit = self.fits(feats)
        return {c: fit[c] / self.norm[c] for c in self.labels}

    def standardized(self, feats: Mapping[str, float]) -> dict[str, float]:
        """Per class, the score standardised over the classes (mean 0, spread 1; all 0 for a text of unknown
        features only)."""
        scores = self.scores(feats)
        values = list(scores.values())
        mean = sum(values) / len(values)
        spread = math.sqrt(sum((v - mean) ** 2 for v in values) / len(values))
        if spread == 0:
            return dict.fromkeys(scores, 0.0)
        return {c: (v - mean) / spread for c, v in scores.items()}

    def probabilities(self, feats: Mapping[str, float]) -> dict[str, float]:
        """Per class, a probability: the standardised scores through a softmax."""
        z = self.standardized(feats)
        top = max(z.values())
        exp = {c: math.exp(self.temperature * (v - top)) for c, v in z.items()}
        total = sum(exp.values())
        return {c: v / total for c, v in exp.items()}
