#!/usr/bin/env python3
"""Render every single-code-point emoji of Noto Color Emoji to a PNG named after its Unicode name.

A labelled image set for text-to-image search: the query "dog" should find DOG.png.
Needs Debian's fonts-noto-color-emoji and Pillow.  Usage: make_emoji_images.py OUT_DIR
Writes OUT_DIR/<NAME>.png and OUT_DIR/labels.jsonl ({"file", "name", "codepoint"}).
"""
import json
import sys
import unicodedata
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

FONT = "/usr/share/fonts/truetype/noto/NotoColorEmoji.ttf"
FONT_SIZE = 109  # the one bitmap strike the colour font carries
RANGES = [(0x1F300, 0x1F5FF), (0x1F600, 0x1F64F), (0x1F680, 0x1F6FF), (0x1F900, 0x1F9FF), (0x1FA70, 0x1FAFF)]


def load_font() -> ImageFont.FreeTypeFont:
    """The Noto Color Emoji font; a clear error when the Debian package is not installed."""
    if not Path(FONT).is_file():
        raise FileNotFoundError(f"{FONT} missing: install it with `make emoji-font` "
                                "(apt-get install fonts-noto-color-emoji)")
    return ImageFont.truetype(FONT, FONT_SIZE)


def render(ch: str, font: ImageFont.FreeTypeFont) -> Image.Image | None:
    """One emoji drawn on a 160x160 white RGB canvas, or None when the font has no glyph for it."""
    img = Image.new("RGB", (160, 160), "white")
    ImageDraw.Draw(img).text((12, 16), ch, font=font, embedded_color=True)
    if img.getbbox() is None or img.convert("L").getextrema()[0] > 250:
        return None
    return img


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    font = load_font()
    n = 0
    with open(out / "labels.jsonl", "w") as labels:
        for lo, hi in RANGES:
            for cp in range(lo, hi + 1):
                ch = chr(cp)
                name = unicodedata.name(ch, "")
                if not name:
                    continue
                img = render(ch, font)
                if img is None:
                    continue
                fname = name.replace(" ", "_") + ".png"
                img.save(out / fname)
                labels.write(json.dumps({"file": fname, "name": name.lower(), "codepoint": f"U+{cp:04X}"}) + "\n")
                n += 1
    print(f"{n} images in {out}")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "emoji"))
