"""The one exception type for bad input: the command line prints it as one line, exit code 2."""


class PruningError(ValueError):
    """Bad input from a user (unknown name, out-of-range value, mismatched file, ...)."""


class DatasetUnavailable(PruningError):
    """A dataset is neither in PRUNING_DATA_DIR, nor shipped, nor downloadable."""


def quote(text, limit: int = 80) -> str:
    """``text`` from a user's file (a tensor, layer, module or class name) made safe to show in a
    one-line message rendered as Markdown: every character that is not printable (newlines, control
    and format characters) becomes ``?``, backquotes are removed, at most ``limit`` characters are
    kept (the last an ellipsis), and the result is wrapped in backquotes: a code span, in which
    Markdown shows links, images and HTML as plain text."""
    text = "".join(c if c.isprintable() else "?" for c in str(text)).replace("`", "")
    if len(text) > limit:
        text = text[:max(limit - 1, 0)] + "…"
    return f"`{text}`" if text.strip() else "(empty)"
