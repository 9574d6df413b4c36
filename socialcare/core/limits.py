"""Numbers that more than one place must agree on, each defined once."""

# The prediction service's request limits (its `--max-posts` and `--max-text-chars`
# defaults); the API schema, the typed client and `socialcare serve` all read them here.
MAX_POSTS = 256
MAX_TEXT_CHARS = 5000
# The largest request body the service reads, in bytes (after gzip decompression): a
# full request (256 posts with 5,000-character texts and parents, UTF-8) fits; anything
# bigger is refused with 413 before it is parsed.
MAX_BODY_BYTES = 8 * 1024 * 1024
# Tokens per post a fine-tuned model reads (training's default `--max-length`); the
# value a model was trained with is saved with it and used when it predicts.
MAX_LENGTH = 128
