"""The model card the page shows: what the model is, what it learned from and how well it separates,
from whatever its metadata holds (any key may be missing or of an unexpected type)."""
from __future__ import annotations

import math

TEXT_LIMIT = 600  # characters of one field: metadata is ours, but a page is not the place for a novel
MAX_SCORES = 8
DEMO_NOTE = ("This is the small demo model that ships with jukesep, trained briefly on synthetic songs; "
             "expect rough stems. Train or download a real model for music.")


def _text(value) -> str | None:
    if value is None or value == "" or isinstance(value, (dict, list)):
        return None
    text = str(value)
    return text if len(text) <= TEXT_LIMIT else text[:TEXT_LIMIT - 1] + "…"


def _numbers(values) -> dict[str, float]:
    """{stem: SDR} from a dict, keeping finite numbers only."""
    if not isinstance(values, dict):
        return {}
    return {str(k)[:40]: round(float(v), 2) for k, v in list(values.items())[:16]
            if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)}


def _scores(meta: dict) -> list[dict]:
    """[{split, sdr: {stem: dB}, songs, minutes, refine}] from "scores" ({split: {mdx_sdr: …}}), or
    from the older "test_sdr_mdx" ({stem: dB})."""
    out = []
    scores = meta.get("scores")
    if isinstance(scores, dict):
        for split, entry in list(scores.items())[:MAX_SCORES]:
            if not isinstance(entry, dict):
                continue
            sdr = _numbers(entry.get("mdx_sdr") if "mdx_sdr" in entry else entry)
            if sdr:
                out.append({"split": str(split)[:40], "sdr": sdr, "songs": _text(entry.get("songs")),
                            "minutes": _text(entry.get("minutes")), "refine": _text(entry.get("refine"))})
    legacy = _numbers(meta.get("test_sdr_mdx"))
    if not out and legacy:
        out.append({"split": "test", "sdr": legacy, "songs": _text(meta.get("test_split")), "minutes": None,
                    "refine": None})
    return out


def model_card(separator) -> dict:
    meta = getattr(separator, "metadata", None)
    meta = meta if isinstance(meta, dict) else {}
    name = str(getattr(separator, "name", None) or meta.get("name") or "model")[:80]
    demo = "demo" in meta or name == "default"
    return {
        "name": name,
        "stems": list(separator.stems),
        "data": _text(meta.get("data")) or _text(meta.get("trained_on")),
        "recipe": _text(meta.get("recipe")),
        "budget": _text(meta.get("budget")),
        "notes": _text(meta.get("notes")),
        "scores": _scores(meta),
        "refine": _text(getattr(separator, "refine", None)),
        "demo": demo,
        "demo_note": (_text(meta.get("demo")) or DEMO_NOTE) if demo else None,
    }
