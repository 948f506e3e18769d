"""Polarity does not depend on PYTHONHASHSEED: the triage pool's workers and the ingest process agree to the bit."""

from __future__ import annotations

import os
import subprocess
import sys

TEXTS = [
    "the app is down again, no refund, worst service ever but staff kind and helpful thanks",
    "still no answer from support after three days, really disappointed, please fix my account",
    "merci pour votre aide rapide, le service client est vraiment super et efficace",
    "impossible de me connecter depuis ce matin, aucune réponse, c'est inadmissible et décevant",
    "love the new update, fast and smooth, but the bill is wrong and nobody answers the phone",
]
SCRIPT = ("import sys\nfrom carebox.sentiment import SentimentAnalyzer\na = SentimentAnalyzer()\n"
          "for lang, t in ((l, line) for l, line in (x.split('|', 1) for x in sys.argv[1:])):\n"
          "    print(a.analyse(t, lang).polarity.hex())\n")


def _polarities(seed: str) -> list[str]:
    args = [f"{'fr' if i in (2, 3) else 'en'}|{t}" for i, t in enumerate(TEXTS)]
    out = subprocess.run([sys.executable, "-c", SCRIPT, *args], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONHASHSEED": seed})
    return out.stdout.split()


def test_polarity_is_the_same_under_every_hash_seed():
    seen = {tuple(_polarities(seed)) for seed in ("0", "1", "2", "3", "4", "5")}
    assert len(seen) == 1, seen
