"""Chinese search over the knowledge base.

A query is cleaned (width, traditional script, case), typos and homophones are repaired through pinyin, plain
pinyin input is turned back into words, the text is cut with jieba (domain dictionary added) and each word is
replaced by the head word of its synonym group.

Two models are trained when the index is built (complement naive Bayes over the words and the characters and
character pairs of the text as written), from the base's own texts and the residents' messages of
knowledge/asked.jsonl: one says which category a question is about, the other whether it is about fundraising at all
(against the everyday questions of knowledge/offtopic.yaml and the out-of-scope residents' messages). An entry ranks
by the category model's fit of its category, its BM25 score over its weighted fields and how closely it resembles one
of its sample questions; the confidence that the question is ours at all (the everyday model, the best BM25 score,
the share of the query's meaning that the base's words cover) accepts or refuses the answer. The weights were chosen
by cross-validation, 5-fold and with each writer of the residents' messages held out (`fangfei eval kb --folds 5`,
`--by-writer`; `scripts/tune_search.py`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.metadata
import json
import logging
import math
import re
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import jieba
import pypinyin
from pypinyin import Style, lazy_pinyin

from knowledge import bm25 as bm25_module
from knowledge import cache, segmenter, yamlfile
from knowledge import classify as classify_module
from knowledge import text as text_module
from knowledge.bm25 import BM25
from knowledge.classify import CategoryModel
from knowledge.schema import KNOWLEDGE_DIR, Entry, KnowledgeBase
from knowledge.text import has_han, normalize

LEXICON_FILE = KNOWLEDGE_DIR / "lexicon.yaml"
OFFTOPIC_FILE = KNOWLEDGE_DIR / "offtopic.yaml"
ASKED_FILE = KNOWLEDGE_DIR / "asked.jsonl"
OFFTOPIC = "_offtopic"
_WORD = re.compile(r"[\u4e00-\u9fff]+|[a-z0-9]+")
_LATIN_ONLY = re.compile(r"^[a-z\s']+$")
_PUNCTUATION = re.compile(r"[,.!?;:，。！？；：、]+")  # pinyin typed with commas and a question mark is still pinyin
_FIELD_WEIGHTS = {"title": 3, "keywords": 3, "questions": 1, "summary": 1, "body": 1}
# a rate however it is written (1%, 百分之一, 一分利, 日息千分之五, 三个点) is one word, so its digits weigh nothing
_N = r"[0-9.零〇一二两三四五六七八九十百点几]+"
_RATE = re.compile(rf"(?:百分之|千分之|万分之){_N}|{_N}\s*[%‰]|{_N}(?:分利|分息|厘息?|个点)")
RATE_WORD = "利率"
_NUMERIC = re.compile(r"^[0-9.%零〇一二三四五六七八九十百千万亿两几半点个块元之分厘毛成倍]+$")
# an entry's lexical fit: how much of the query it covers, how closely it resembles one sample question (by words
# and by character pairs)
W_COVER, W_TOKENS, W_BIGRAMS = 0.4, 0.3, 0.3
# the ranking: the category model's standardised fit, the entry's BM25 relative to the best, its lexical fit (chosen
# by 5-fold cross-validation; held out by writer, any weights near these rank alike). The log-odds that a question is
# not ours: the everyday model's margin, the best BM25 score (log1p), the best coverage: fitted by logistic
# regression on the held-out signals of both cross-validations (`scripts/tune_search.py`), the bias then set so
# that the default threshold 0.3 gives the best sum of top-1 and no-match with each writer held out in turn
# (2026-12-07, eleven writers: 89.1 + 97.1; the fitted bias itself gave 92.3 + 89.8).
W_FIT, W_BM25, W_LEXICAL = 1.8, 3.2, 0.9
G_BIAS, G_EVERYDAY, G_BM25, G_COVER = 5.59, 0.71, -1.18, -2.62
TITLE_WEIGHT = 3.0  # a title or keyword line counts as much as three sample questions
EVERYDAY_WEIGHT = 6.0  # each everyday question weighs as six: they are few beside the base's texts
ASKED_WEIGHT = 1.0  # a resident's question in knowledge/asked.jsonl weighs as one sample question
MODEL_CATEGORIES = 5  # the entries of the model's first five categories are ranked even without a shared word
NGRAMS = (1, 2)  # characters and pairs (triples added nothing under cross-validation and cost time)
_SENTENCE = re.compile(r"[。；！？\n]")
_FUZZY = (("zh", "z"), ("ch", "c"), ("sh", "s"), ("ing", "in"), ("eng", "en"), ("ang", "an"))
# the code an index is built by: a change to any of it makes a cached index stale
_BUILT_BY = (__file__, bm25_module.__file__, classify_module.__file__, segmenter.__file__, text_module.__file__)
jieba.setLogLevel(logging.WARNING)  # jieba sets its logger to DEBUG on import ("Building prefix dict …" on stderr)


@dataclass(frozen=True)
class Lexicon:
    terms: tuple[str, ...]
    synonyms: dict[str, str]
    typos: dict[str, str]
    stopwords: frozenset[str]

    @classmethod
    def load(cls, path: Path = LEXICON_FILE) -> Lexicon:
        data = yamlfile.load(path)
        synonyms: dict[str, str] = {}
        for group in data.get("synonyms", []):
            words = [normalize(str(w)) for w in group]
            for w in words:
                synonyms.setdefault(w, words[0])
        return cls(
            terms=tuple(normalize(str(t)) for t in data.get("terms", [])),
            synonyms=synonyms,
            typos={normalize(k): normalize(v) for k, v in (data.get("typos") or {}).items()},
            stopwords=frozenset(normalize(str(w)) for w in data.get("stopwords", [])),
        )


def load_offtopic(path: Path = OFFTOPIC_FILE) -> list[str]:
    """The everyday questions that are not about fundraising."""
    return [str(q) for q in yamlfile.load(path)["questions"]]


@dataclass(frozen=True)
class Asked:
    """A message as residents write it, by someone who never saw the entries, with the categories that answer it
    (none: not ours to answer, like the everyday questions); `by` names the writer, so that cross-validation can
    hold out everything one writer wrote."""

    question: str
    categories: tuple[str, ...]
    by: str = ""


def load_asked(path: Path = ASKED_FILE) -> list[Asked]:
    """The residents' messages of knowledge/asked.jsonl (one {"q": ..., "cats": [...], "by": ...} per line)."""
    out: list[Asked] = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            row = json.loads(line)
            out.append(Asked(str(row["q"]), tuple(str(c) for c in row["cats"]), str(row.get("by", ""))))
    return out


@dataclass(frozen=True)
class Hit:
    entry: Entry
    score: float


@dataclass(frozen=True)
class SearchResult:
    query: str
    matched: bool
    hits: tuple[Hit, ...]
    worded: bool = True  # False: the question holds no word that says what it is about ("这个靠谱吗", "真的假的")

    @property
    def best(self) -> Hit | None:
        return self.hits[0] if self.hits else None


def _pinyin_key(syllables: list[str]) -> str:
    key = "".join(syllables)
    for a, b in _FUZZY:
        key = key.replace(a, b)
    return key


class SearchIndex:
    def __init__(self, kb: KnowledgeBase, lexicon: Lexicon | None = None,
                 offtopic: Sequence[str] | None = None, asked: Sequence[Asked] | None = None) -> None:
        self.kb = kb
        self.lexicon = lexicon or Lexicon.load()
        vocabulary = set(self.lexicon.terms) | set(self.lexicon.synonyms) | set(self.lexicon.typos.values())
        for e in kb.entries:
            vocabulary.update(normalize(k) for k in e.keywords)
        self.domain_words = sorted(w for w in vocabulary if has_han(w) and len(w) > 1)
        self.tokenizer = self._tokenizer()
        offtopic = load_offtopic() if offtopic is None else offtopic
        words = _Memo(self._words)  # each text of the base is cut once while the index is built
        docs: list[list[str]] = []
        self.question_tokens: list[list[set[str]]] = []
        for e in kb.entries:
            # a field's words are those of its texts (the sentences of the body), each cut once for all uses
            fields = {"title": [e.title], "keywords": [" ".join(e.keywords)], "questions": e.questions,
                      "summary": [e.summary], "body": _sentences(e)}
            doc: list[str] = []
            for name, texts in fields.items():
                doc += [self._canon(w) for text in texts for w in words(text)] * _FIELD_WEIGHTS[name]
            doc += [self._canon(w) for w in words(kb.categories[e.category].name)]
            docs.append(doc)
            self.question_tokens.append([{self._canon(w) for w in words(q)} for q in (e.title, *e.questions)])
        self.entries = list(kb.entries)
        self.bm25 = BM25(docs)
        self.by_category: dict[str, list[int]] = {}
        for i, e in enumerate(self.entries):
            self.by_category.setdefault(e.category, []).append(i)
        # each sample question's words, normed by their total weight, for the resemblance score
        self.question_words = _Samples()
        for i, qs in enumerate(self.question_tokens):
            for q in qs:
                if q:
                    self.question_words.add(i, q, math.sqrt(sum(self._weight(t) for t in q)))
        self._build_bigrams()
        self.doc_sets = [set(d) for d in docs]
        # pinyin of every known word, to repair homophone typos and read plain pinyin input
        self.known = {t for d in docs for t in d} | vocabulary
        self.by_pinyin: dict[str, str] = {}
        self._readings: dict[str, str] = {}
        for word in sorted(self.known, key=lambda w: (-self.bm25.idf.get(self._canon(w), 0), w)):
            if has_han(word) and 2 <= len(word) <= 6:
                self.by_pinyin.setdefault(_pinyin_key(lazy_pinyin(word, style=Style.NORMAL)), word)
        self.max_key_len = max((len(k) for k in self.by_pinyin), default=0)
        self._train(kb, offtopic, load_asked() if asked is None else asked, words)

    @classmethod
    def cached(cls, kb: KnowledgeBase) -> SearchIndex:
        """The index of `kb` with the bundled lexicon, everyday and residents' questions: read from this user's
        cache (knowledge/cache.py) when one was built from exactly these texts by exactly this code, else built
        and kept for the next start (about 0.4 s instead of 1.6 s)."""
        lexicon, offtopic, asked = Lexicon.load(), load_offtopic(), load_asked()
        name = f"index-{_fingerprint(kb, lexicon, offtopic, asked)}.pickle"
        found = cache.read(name, lambda data: isinstance(data, cls))
        if isinstance(found, cls):
            found.tokenizer = found._tokenizer()
            return found
        index = cls(kb, lexicon, offtopic, asked)
        cache.write(name, index, stale="index-")
        return index

    def __getstate__(self) -> dict[str, object]:
        state = dict(self.__dict__)
        del state["tokenizer"]  # jieba's dictionary has a cache of its own; the domain words are added again
        return state

    def _tokenizer(self) -> jieba.Tokenizer:
        tokenizer = segmenter.tokenizer()
        for word in self.domain_words:
            tokenizer.add_word(word, freq=20000)
        return tokenizer

    def _train(self, kb: KnowledgeBase, offtopic: Sequence[str], asked: Sequence[Asked],
               words: Callable[[str], list[str]]) -> None:
        """Two models from the base's own texts and the residents' questions. The category model: which category a
        question is about (titles and keywords count several times, each part of the body is a text of its own,
        residents' messages count as sample questions; everyday questions are a class of their own). The everyday
        model: whether a question is about fundraising at all."""
        memo: dict[str, Counter[str]] = {}

        def features(text: str) -> Counter[str]:
            found = memo.get(text)
            if found is None:
                found = memo[text] = self._features(normalize(text), words(text))
            return found

        samples: list[tuple[str, Counter[str], float]] = []
        topical: list[tuple[str, Counter[str]]] = []
        for e in kb.entries:
            for text in (e.title, " ".join(e.keywords)):
                samples.append((e.category, features(text), TITLE_WEIGHT))
            samples += [(e.category, features(text), 1.0) for text in (*e.questions, e.summary, *_parts(e))]
            topical += [("on", features(text)) for text in (e.title, " ".join(e.keywords), *e.questions)]
        for c in kb.categories.values():
            samples.append((c.slug, features(f"{c.name} {c.covers}"), 1.0))
        everyday = [features(q) for q in offtopic]
        for a in asked:
            if a.categories:
                samples += [(c, features(a.question), ASKED_WEIGHT) for c in a.categories if c in kb.categories]
                topical.append(("on", features(a.question)))
            else:
                everyday.append(features(a.question))
        samples += [(OFFTOPIC, f, 1.0) for f in everyday]
        self.model = CategoryModel(samples)
        self.everyday = CategoryModel([*topical, *(("off", f, EVERYDAY_WEIGHT) for f in everyday)])

    def _features(self, text: str, words: list[str]) -> Counter[str]:
        """The models' view of a text: its words (canonical, without stop words) and the characters and
        character pairs of the text as written (how a question is asked counts too: 怎么办, 能不能退)."""
        feats: Counter[str] = Counter("w" + self._canon(w) for w in words)
        for chunk in _RATE.sub(f" {RATE_WORD} ", text).split():
            for n in NGRAMS:
                feats.update(chunk[i:i + n] for i in range(len(chunk) - n + 1))
        return feats

    def _build_bigrams(self) -> None:
        """Character bigrams of every sample question: robust where word segmentation goes astray."""
        samples: list[tuple[int, set[str]]] = []
        for i, e in enumerate(self.entries):
            for q in (e.title, *e.questions):
                samples.append((i, _bigrams(normalize(q))))
        df = Counter(g for _, grams in samples for g in grams)
        n = len(samples)
        self.bigram_idf = {g: math.log(1 + n / f) for g, f in df.items()}
        self.bigram_max_idf = math.log(1 + n)
        self.question_bigrams = _Samples()
        for i, grams in samples:
            self.question_bigrams.add(i, grams, math.sqrt(sum(self.bigram_idf[g] ** 2 for g in grams)) or 1.0)

    def _bigram_similarity(self, text: str) -> dict[int, float]:
        """Per entry, the best cosine between the query's bigrams and one of the entry's sample questions."""
        grams = _bigrams(text)
        if not grams:
            return {}
        q_norm = math.sqrt(sum(self.bigram_idf.get(g, self.bigram_max_idf) ** 2 for g in grams))
        weights = {g: w * w for g in grams if (w := self.bigram_idf.get(g)) is not None}
        return self.question_bigrams.best(weights, q_norm)

    # -- text to tokens -------------------------------------------------------------------------------------------
    def _canon(self, token: str) -> str:
        return self.lexicon.synonyms.get(token, token)

    def _tokens(self, text: str, cuts: dict[str, list[str]] | None = None) -> list[str]:
        """The text's words without stop words, canonical; `cuts`: runs of Chinese already cut by jieba for
        this text."""
        return [self._canon(w) for w in self._words(text, cuts)]

    def _words(self, text: str, cuts: dict[str, list[str]] | None = None) -> list[str]:
        """The text's words as written, without stop words and bare numbers."""
        out: list[str] = []
        for chunk in _WORD.findall(_RATE.sub(f" {RATE_WORD} ", normalize(text))):
            if not has_han(chunk):
                if chunk not in self.lexicon.stopwords and not chunk.isdigit():
                    out.append(chunk)
                continue
            for tok in (cuts or {}).get(chunk) or self.tokenizer.cut(chunk, HMM=False):
                if tok not in self.lexicon.stopwords and not _NUMERIC.match(tok):
                    out.append(tok)
        return out

    def _repair(self, text: str, cuts: dict[str, list[str]]) -> str:
        """Fix listed typos, then replace any 2-4 character span that sounds like a known word but is not one
        (非法急资 -> 非法集资); the cuts of the runs left as they were are kept in `cuts` for the tokens."""
        for wrong, right in self.lexicon.typos.items():
            text = text.replace(wrong, right)
        return re.sub(r"[\u4e00-\u9fff]{2,}", lambda m: self._repair_run(m.group(0), cuts), text)

    def _repair_run(self, run: str, cuts: dict[str, list[str]]) -> str:
        syllables: list[str] = []
        # token boundaries: a repair may swallow whole words but must not cut one in half
        starts, ends, singles, pos = {0}, set(), set(), 0
        cut = list(self.tokenizer.cut(run, HMM=False))
        for tok in cut:
            if len(tok) == 1:
                singles.add(pos)
            pos += len(tok)
            starts.add(pos)
            ends.add(pos)
        if not singles:  # every character belongs to a known word: nothing to repair
            cuts[run] = cut
            return run
        fixes: dict[int, tuple[int, str]] = {}  # start -> (size, word), not overlapping, longer spans first
        taken: set[int] = set()
        for size in (4, 3, 2):
            for i in range(len(run) - size + 1):
                span = run[i:i + size]
                if (i not in starts or i + size not in ends or not singles & set(range(i, i + size))
                        or span in self.known or taken & set(range(i, i + size))
                        or all(ch in self.lexicon.stopwords for ch in span)):  # 这是 is no typo of 这时
                    continue
                syllables = syllables or [self._reading(ch) for ch in run]
                word = self.by_pinyin.get(_pinyin_key(syllables[i:i + size]))
                # a misspelling keeps most of its characters: 投姿 -> 投资, 区快链 -> 区块链
                if word and len(word) == size and 2 * sum(a == b for a, b in zip(span, word, strict=True)) >= size:
                    fixes[i] = (size, word)
                    taken.update(range(i, i + size))
        if not fixes:
            cuts[run] = cut
            return run
        out, i = [], 0
        while i < len(run):
            size, word = fixes.get(i, (1, run[i]))
            out.append(word)
            i += size
        return "".join(out)

    def _reading(self, char: str) -> str:
        """A character's usual pinyin, looked up once per character (pypinyin's phrase-aware reading of the whole
        text costs more than the rest of the search, and a typo has no phrase to be read in)."""
        reading = self._readings.get(char)
        if reading is None:
            reading = self._readings[char] = lazy_pinyin(char, style=Style.NORMAL)[0]
        return reading

    def _from_pinyin(self, text: str) -> str:
        """Turn plain pinyin ("fei fa ji zi", "feifajizi") into the known words it spells."""
        letters = re.sub(r"[\s']+", "", text)
        for a, b in _FUZZY:
            letters = letters.replace(a, b)
        words: list[str] = []
        i = 0
        while i < len(letters):
            for size in range(min(self.max_key_len, len(letters) - i), 1, -1):
                word = self.by_pinyin.get(letters[i:i + size])
                if word:
                    words.append(word)
                    i += size
                    break
            else:
                i += 1
        return " ".join(words)

    def query_tokens(self, query: str) -> list[str]:
        cuts: dict[str, list[str]] = {}
        return self._tokens(self._prepare(query, cuts), cuts)

    def _prepare(self, query: str, cuts: dict[str, list[str]]) -> str:
        text = normalize(query)
        letters = _PUNCTUATION.sub(" ", text).strip()
        if _LATIN_ONLY.match(letters) and (len(letters.split()) >= 2 or len(letters) >= 6):
            text = self._from_pinyin(letters) or text
        return self._repair(text, cuts)

    # -- ranking --------------------------------------------------------------------------------------------------
    def search(self, query: str, top: int = 5, threshold: float = 0.3, category: str | None = None) -> SearchResult:
        """The entries that answer `query`, best first (only those of `category` when given)."""
        signals = self.signals(query, category)
        if signals is None:
            return SearchResult(query, False, (), worded=bool(self.query_tokens(query)))
        ranked, confidence = rank(signals)
        hits = tuple(Hit(self.entries[i], round(confidence * math.exp(r - ranked[0][0]), 4))
                     for r, i in _by_category(ranked, self.entries)[:top])
        return SearchResult(query, bool(hits) and hits[0].score >= threshold, hits)

    def signals(self, query: str, category: str | None = None) -> Signals | None:
        """What the ranking is made of, for the entries worth ranking (None: the query holds no word)."""
        cuts: dict[str, list[str]] = {}
        prepared = self._prepare(query, cuts)
        words = self._words(prepared, cuts)
        tokens = [self._canon(w) for w in words]
        unique = set(tokens)
        if not unique:
            return None
        idf = {t: self._weight(t) for t in unique}
        mass = sum(idf.values())
        bm = self.bm25.scores(tokens)
        feats = self._features(prepared, words)
        fit = self.model.standardized(feats)
        apart = self.everyday.fits(feats)
        # the categories the model puts first bring all their entries, whatever words they share
        for c in sorted(fit, key=fit.__getitem__, reverse=True)[:MODEL_CATEGORIES]:
            for i in self.by_category.get(c, ()):
                bm.setdefault(i, 0.0)
        if category is not None:
            bm = {i: bm.get(i, 0.0) for i in self.by_category.get(category, ())}
        if not bm:
            return None
        similar = self._bigram_similarity(prepared)
        resemblance = self.question_words.best(idf, math.sqrt(mass))  # weighted cosine over words
        top_bm = max(bm.values()) or 1.0
        entries: dict[int, tuple[float, float, float, float]] = {}
        for i, b in bm.items():
            covered = sum(w for t, w in idf.items() if t in self.doc_sets[i]) / mass
            entries[i] = (fit.get(self.entries[i].category, 0.0), b / top_bm, covered,
                          W_COVER * covered + W_TOKENS * resemblance.get(i, 0.0) + W_BIGRAMS * similar.get(i, 0.0))
        return Signals(entries, apart["off"] - apart["on"], top_bm)

    def _weight(self, token: str) -> float:
        """A token's share of the query's meaning: its idf in the knowledge base; for a word the base never uses,
        a share that grows with how rare the word is in general Chinese (村民 counts less than 社保卡)."""
        weight = self.bm25.idf.get(token)
        if weight is None:
            general = math.log(self.tokenizer.total / (self.tokenizer.FREQ.get(token, 0) + 1))
            weight = self.bm25.max_idf * min(1.0, max(0.2, (general - 7.0) / 7.0))
        return weight * 0.5 if len(token) == 1 else weight



@dataclass(frozen=True)
class Signals:
    """Per candidate entry: the category model's standardised fit of its category, its BM25 score relative to the
    best, the share of the query's meaning it covers, its lexical fit; for the query: how much more the everyday
    model believes it is an everyday question (log-likelihood margin), the best BM25 score."""

    entries: dict[int, tuple[float, float, float, float]]
    everyday: float
    top_bm25: float


def acceptance_features(s: Signals) -> tuple[float, float, float, float]:
    """What the log-odds that a query is not ours is made of, in the order of (G_BIAS, G_EVERYDAY, G_BM25,
    G_COVER): 1, the everyday model's margin, the best BM25 score (log1p), the best coverage."""
    covered = max(c for _f, _b, c, _l in s.entries.values())
    return 1.0, s.everyday, math.log1p(s.top_bm25), covered


def rank(s: Signals, ranking: tuple[float, float, float] = (W_FIT, W_BM25, W_LEXICAL),
         acceptance: tuple[float, ...] = (G_BIAS, G_EVERYDAY, G_BM25, G_COVER),
         ) -> tuple[list[tuple[float, int]], float]:
    """The entries best first with their ranking scores, and the confidence that the query is about fundraising
    at all (0-1). The weights default to those chosen by cross-validation (scripts/tune_search.py tries others)."""
    w_fit, w_bm25, w_lexical = ranking
    ranked = sorted(((w_fit * fit + w_bm25 * bm + w_lexical * lexical, i)
                     for i, (fit, bm, _covered, lexical) in s.entries.items()), reverse=True)
    x = sum(g * f for g, f in zip(acceptance, acceptance_features(s), strict=True))
    return ranked, 1.0 / (1.0 + math.exp(min(x, 50.0)))


def _parts(entry: Entry) -> list[str]:
    """The parts of an entry's body (套路, 识别, 怎么办), each a text of its own for the category model (as good as
    one text per sentence under both cross-validations, and a third fewer texts to learn from)."""
    return [part for part in entry.body.values() if part.strip()]


def _fingerprint(kb: KnowledgeBase, lexicon: Lexicon, offtopic: Sequence[str], asked: Sequence[Asked]) -> str:
    """A digest of everything an index is built from: the texts (in a canonical form) and the code that builds it."""
    texts = {
        "categories": [dataclasses.asdict(c) for c in kb.categories.values()],
        "entries": [dataclasses.asdict(e) for e in kb.entries],
        "lexicon": [list(lexicon.terms), sorted(lexicon.synonyms.items()), sorted(lexicon.typos.items()),
                    sorted(lexicon.stopwords)],
        "offtopic": list(offtopic), "asked": [dataclasses.asdict(a) for a in asked],
        "versions": [jieba.__version__, pypinyin.__version__, importlib.metadata.version("zhconv")],
    }
    digest = hashlib.sha256(json.dumps(texts, ensure_ascii=False, sort_keys=True).encode())
    for module in _BUILT_BY:
        digest.update(Path(module).read_bytes())
    return digest.hexdigest()[:24]


def _sentences(entry: Entry) -> list[str]:
    """The sentences of an entry's body, each a text of its own."""
    return [s for part in entry.body.values() for s in _SENTENCE.split(part) if s.strip()]


def _by_category(ranked: list[tuple[float, int]], entries: list[Entry]) -> list[tuple[float, int]]:
    """The best entry of each category first (a resident needs the right category), then the others."""
    seen: set[str] = set()
    first: list[tuple[float, int]] = []
    rest: list[tuple[float, int]] = []
    for item in ranked:
        category = entries[item[1]].category
        (rest if category in seen else first).append(item)
        seen.add(category)
    return first + rest


class _Memo:
    """A function's answers kept by argument (for the texts an index build cuts more than once)."""

    def __init__(self, fn: Callable[[str], list[str]]) -> None:
        self.fn = fn
        self.seen: dict[str, list[str]] = {}

    def __call__(self, text: str) -> list[str]:
        found = self.seen.get(text)
        if found is None:
            found = self.seen[text] = self.fn(text)
        return found


class _Samples:
    """Sample questions as sets of features (words, or character bigrams), each with its norm, indexed by feature:
    a query touches only the samples that share a feature with it."""

    def __init__(self) -> None:
        self.entry: list[int] = []  # sample -> the entry it belongs to
        self.norm: list[float] = []
        self.postings: dict[str, list[int]] = {}

    def add(self, entry: int, features: Iterable[str], norm: float) -> None:
        for feature in features:
            self.postings.setdefault(feature, []).append(len(self.entry))
        self.entry.append(entry)
        self.norm.append(norm)

    def best(self, weights: dict[str, float], query_norm: float) -> dict[int, float]:
        """Per entry, the best cosine between the query (its features' weights) and one of the entry's samples."""
        dots: dict[int, float] = {}
        for feature, w in weights.items():
            for k in self.postings.get(feature, ()):
                dots[k] = dots.get(k, 0.0) + w
        best: dict[int, float] = {}
        for k, dot in dots.items():
            sim = dot / (query_norm * self.norm[k])
            if sim > best.get(self.entry[k], 0.0):
                best[self.entry[k]] = sim
        return best


def _bigrams(text: str) -> set[str]:
    grams: set[str] = set()
    for run in re.findall(r"[\u4e00-\u9fff]+|[a-z0-9]+", text):
        if len(run) == 1 or not has_han(run):
            grams.add(run)
        grams.update(run[i:i + 2] for i in range(len(run) - 1))
    return grams


class PlainBM25:
    """The baseline the issue asks us to beat: BM25 over default jieba tokens of the same entries."""

    def __init__(self, kb: KnowledgeBase) -> None:
        self.tokenizer = segmenter.tokenizer()
        self.entries = list(kb.entries)
        self.bm25 = BM25([self._tokens(" ".join((e.title, *e.questions, e.summary, *e.body.values(), *e.keywords)))
                          for e in self.entries])

    def _tokens(self, text: str) -> list[str]:
        return [t for t in self.tokenizer.cut(text) if t.strip() and _WORD.fullmatch(t.lower())]

    def search(self, query: str, top: int = 5) -> SearchResult:
        scores = sorted(((s, i) for i, s in self.bm25.scores(self._tokens(query)).items()), reverse=True)
        hits = tuple(Hit(self.entries[i], round(s, 4)) for s, i in scores[:top])
        return SearchResult(query, bool(hits), hits)
