"""Check a data v2 draft file: JSON, fields, labels, openings, style counts.

What every writer ran on its own file (as /work/check_draft.py): python3 check_draft.py FILE
"""

import collections
import json
import re
import sys

INTENTS = {"complaint", "question", "factual_error", "humour", "praise"}
SENT = {"negative", "neutral", "positive"}
FIELDS = {
    "id",
    "text",
    "lang",
    "labels",
    "sentiment",
    "annotator",
    "source",
    "writer",
    "parent_text",
}
path = sys.argv[1]
rows, bad, openings = [], 0, collections.Counter()
for n, line in enumerate(open(path, encoding="utf-8"), 1):
    if not line.strip():
        continue
    try:
        r = json.loads(line)
    except Exception as e:
        print(f"{path}:{n}: not JSON: {e}")
        bad += 1
        continue
    problems = []
    if set(r) - FIELDS:
        problems.append(f"unknown fields {set(r) - FIELDS}")
    for f in ("id", "text", "lang", "labels", "sentiment", "annotator", "source", "writer"):
        if f not in r:
            problems.append(f"missing {f}")
    if not set(r.get("labels", [])) <= INTENTS:
        problems.append(f"bad labels {r.get('labels')}")
    if r.get("sentiment") not in SENT:
        problems.append(f"bad sentiment {r.get('sentiment')}")
    if r.get("source") not in {"facebook", "instagram", "x", "forum", "review"}:
        problems.append("bad source")
    if "parent_text" in r and not str(r["parent_text"]).strip():
        problems.append("empty parent_text")
    if problems:
        print(f"{path}:{n}: {'; '.join(problems)}")
        bad += 1
    rows.append(r)
    words = re.sub(r"[^\w\s@#]", " ", r.get("text", "").lower()).split()
    openings[" ".join(words[:3])] += 1
ids = collections.Counter(r.get("id") for r in rows)
for i, c in ids.items():
    if c > 1:
        print(f"id {i} used {c} times")
        bad += 1
for o, c in openings.items():
    if c > 1 and len(o.split()) == 3:
        print(f"opening '{o}' used {c} times")
N = len(rows) or 1
wc = [len(r["text"].split()) for r in rows]
emoji = re.compile("[\U0001f300-\U0001faff\u2600-\u27bf]")


def share(f):
    return f"{100 * sum(map(f, rows)) / N:.0f}%"


print(f"{len(rows)} posts, {bad} problems")
print(
    "long>=40:",
    share(lambda r: len(r["text"].split()) >= 40),
    " short<=10:",
    share(lambda r: len(r["text"].split()) <= 10),
    " @:",
    share(lambda r: "@" in r["text"]),
    " #:",
    share(lambda r: "#" in r["text"]),
    " link:",
    share(lambda r: "http" in r["text"] or "www." in r["text"]),
    " emoji:",
    share(lambda r: bool(emoji.search(r["text"]))),
    " replies:",
    share(lambda r: "parent_text" in r),
)
print(
    "labels:",
    collections.Counter(label for r in rows for label in r["labels"]),
    " no intent:",
    sum(not r["labels"] for r in rows),
    " sentiment:",
    collections.Counter(r["sentiment"] for r in rows),
)
