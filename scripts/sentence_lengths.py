#!/usr/bin/env python3
"""How long the knowledge base's reply sentences are (issue 15 §3, plain words for elderly readers).

Prints the number of sentences in every entry's summary and body parts (cut at 。！？； and line breaks,
a placeholder counted without its braces), how many are longer than 25 and than 45 characters, and the worst
20 as `file: entry id: field: length: sentence`. A report: it always exits 0.

    .venv/bin/python scripts/sentence_lengths.py [--worst N] [entries folder]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from knowledge import schema


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("entries", nargs="?", type=Path, default=schema.ENTRIES_DIR)
    parser.add_argument("--worst", type=int, default=20)
    args = parser.parse_args()
    kb, problems = schema.load(args.entries)
    for p in problems:
        print(f"problem: {p}")
    rows = [(schema.sentence_length(s), e.source, e.id, fld, s)
            for e in kb.entries for fld, text in schema.reply_texts(e) for s in schema.sentences(text)]
    total = len(rows)
    plain, most = schema.SENTENCE_PLAIN, schema.SENTENCE_MAX
    over_plain = sum(1 for r in rows if r[0] > plain)
    over_max = sum(1 for r in rows if r[0] > most)
    share = over_plain / total if total else 0.0
    print(f"{len(kb.entries)} entries, {total} sentences (summary and body parts)")
    print(f"longer than {plain}: {over_plain} ({share:.1%}, target at most {schema.LONG_SHARE:.0%})")
    print(f"longer than {most}: {over_max} (target 0)")
    if rows:
        print(f"mean length {sum(r[0] for r in rows) / total:.1f}, longest {max(r[0] for r in rows)}")
    print(f"worst {min(args.worst, total)}:")
    for length, fname, eid, fld, sentence in sorted(rows, key=lambda r: (-r[0], r[1], r[2]))[:args.worst]:
        print(f"{fname}: {eid}: {fld}: {length}: {sentence}")


if __name__ == "__main__":
    try:
        main()
    except BrokenPipeError:  # piped into head: the report was cut, which is no error
        sys.stderr.close()
    sys.exit(0)
