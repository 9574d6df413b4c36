"""The labelling guide (../shared/LABELING.md) in a few lines, shown beside each post.

The contract stays the guide; this is a reminder for the reviewer at work.
"""

import html

GUIDE_SUMMARY: dict[str, str] = {
    "complaint": "dissatisfied with the insurer (claim, delay, price, staff, app, decision); "
    "sarcastic complaints count. Always respond.",
    "question": "asks for information, help, a status or a decision; a request worded as a "
    "statement counts, a purely rhetorical question in a rant does not.",
    "factual_error": "states as fact something wrong or rumour-like about the insurer, its "
    "products, terms or prices ('they NEVER pay'). A question about a rumour is a question.",
    "humour": "jokes, memes, playful banter meant to amuse; a joke that also carries a "
    "grievance is complaint + humour.",
    "praise": "thanks, compliments, a good experience; a thank-you that still asks is "
    "praise + question.",
}
SENTIMENT_SUMMARY = (
    "Exactly one: the author's overall tone towards the insurer or subject. Sarcasm takes "
    "the sentiment it means. A joke mocking the insurer is negative, warm is positive, no "
    "attitude to the insurer is neutral. An alarmist factual error is negative, a calm tip "
    "neutral."
)
NO_INTENT_SUMMARY = "None of these (a remark, shared news, spam, off-topic): leave all unticked."


def guide_html() -> str:
    """The labelling guide's summary, shown beside the post."""
    rows = "".join(
        f"<li><b>{name}</b>: {html.escape(rule)}</li>" for name, rule in GUIDE_SUMMARY.items()
    )
    return (
        "<div style='font-size:12px;line-height:1.35'>"
        "<b>Intents</b> (any number)<ul style='padding-left:16px;margin:2px 0'>"
        f"{rows}</ul><i>{html.escape(NO_INTENT_SUMMARY)}</i><br><br>"
        f"<b>Sentiment</b> (exactly one): {html.escape(SENTIMENT_SUMMARY)}<br><br>"
        "Full guide: <code>../shared/LABELING.md</code></div>"
    )
