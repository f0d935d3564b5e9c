#!/usr/bin/env python3
"""Writes the tokenizer fixtures under tests/fixtures/text/ (run from the repo root
with .venv/bin/python scripts/gen-text-fixtures.py).

The reference is BertTokenizerFast exactly as sentence-transformers loads it for
models/all-MiniLM-L6-v2. Outputs:

  tokens.jsonl.zst  one JSON object per line: {"text": ..., "ids": [...]} where ids
                    are the full, untruncated ids ([CLS] ... [SEP]); "st" holds the
                    ids sentence-transformers feeds the model (truncated to
                    max_seq_length) when they differ. Texts: every title and
                    abstract of a fixed random sample of the shared arXiv data plus
                    a hand-made edge set.
  src/text/unicode_compat.h
                    the code points where utf8proc's Unicode tables (another
                    Unicode version) would make our tokenizer disagree with the
                    reference, with the reference's treatment of each; written by
                    mirroring src/text/text.c's per-character rules over
                    libutf8proc (ctypes) and comparing with unicode.txt's data.
  unicode.txt       how normalisation + pre-tokenisation treat every code point c,
                    observed on the string "a" + c + "a": runs of code points
                    that are kept ('same'), removed ('rm'), turned into a word
                    break ('sp'), or isolated as a word of their own ('iso'), and
                    one explicit line for every other code point with the words
                    the reference produced.
"""
import ctypes
import ctypes.util
import glob
import io
import json
import random
import sys

import zstandard
from sentence_transformers import SentenceTransformer

MODEL = "models/all-MiniLM-L6-v2"
OUT = "tests/fixtures/text/"
PAPERS_PER_PART = 330

EDGE = [
    "",
    " ",
    "\t\n\r ",
    "Hello, World!",
    "Café crème brûlée naïve résumé Ångström façade",
    "ÀÁÂÃÄÅàáâãäå ÈÉÊËèéêë ÌÍÎÏìíîï Ñ ñ ÒÓÔÕÖØ òóôõöø ÙÚÛÜ ùúûü Ýý ÿ Çç ß ẞ",
    "İstanbul ıi İI Straße ǅ ǈ ǋ ΣΑΣ σας ς",
    "Ǆemal ǉubljana ǌ ﬁne ﬂow ﬃ ﬄ ﬅ Ⅻ ⅻ ① ㈱ ㎏ ™ ℃ ℉ K Å",
    "中文分词测试：深度学习与自然语言处理。",
    "日本語のテキスト、カタカナとひらがな。漢字も。ｶﾀｶﾅ",
    "한국어 텍스트 토크나이저 테스트",
    "混合 English 和 中文 text 123",
    "𠀀𠀁 𪜀 𫝀 𫠠 𬺰 丽 ＡＢＣ１２３ ！？",
    "emoji 😀😃😄 👍🏽 👨‍👩‍👧‍👦 🇫🇷 🥰 🫠 ❤️ ✓ ✨",
    "zero\u200bwidth\u200cjoiner\u200dand\ufeffbom\u2060wj\u00adsoft",
    "control\x00chars\x01\x02\x07\x08\x0b\x0c\x1b\x7f\x80\x85\x9f here",
    "tabs\tand\nnewlines\r\nand\u00a0nbsp\u2003emsp\u3000ideographic\u2028ls\u2029ps\u202f\u205f\u1680",
    "replacement \ufffd char and private \ue000\uf8ff\U000f0000 use",
    "unassigned \u0378\u0379 \U0001fffe \U000e0000 \U000e0001 tag \U000e0041",
    "LaTeX: $\\mathcal{O}(n \\log n)$ and \\(\\alpha_{i}^{2}\\) with $$\\sum_{k=1}^{\\infty} \\frac{1}{k^2} = \\frac{\\pi^2}{6}$$",
    "\\begin{equation} E = mc^2 \\end{equation} \\textbf{bold} \\cite{ref2020} ~ \\% \\& \\_",
    "URLs: https://arxiv.org/abs/2101.00001v2?x=1&y=2#sec, http://example.com/a_b-c.d/~user, www.test.org",
    "emails: someone@example.com, first.last+tag@sub.domain.co.uk",
    "code: int main(void) { return a[i] >= b->c && d != e || f <= g; } // comment",
    "symbols: !\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~ ¡¿ «» ‹› „“ ” ‘’ ‚ – — … · • § ¶ † ‡ ‰ ′ ″ ※ ⁂",
    "math: ∀x∈ℝ, ∃y: x² + y² ≤ 1 ⇒ |x| ≤ 1; ∫₀^∞ e^{-x} dx = 1, ∑ ∏ √ ∞ ≈ ≠ ± × ÷ ∂ ∇ ⊗ ⊕",
    "greek: αβγδεζηθικλμνξοπρστυφχψω ΑΒΓΔΕΖΗΘΙΚΛΜΝΞΟΠΡΣΤΥΦΧΨΩ ά έ ή ί ό ύ ώ ϊ ϋ ΐ ΰ",
    "cyrillic: Привет мир! Ёлка йод ЙОД ё",
    "arabic: مرحبا بالعالم، هذا اختبار. hebrew: שלום עולם",
    "hindi: नमस्ते दुनिया। tamil: வணக்கம் thai: สวัสดีชาวโลก",
    "vietnamese: Tiếng Việt có dấu: ắ ằ ẳ ẵ ặ ấ ầ ẩ ẫ ậ đ Đ",
    "combining: e\u0301 a\u0300\u0301\u0302 o\u0308 n\u0303 \u0301alone x\u20d7 q\u0323\u0307",
    "a" * 100,
    "b" * 101,
    "supercalifragilisticexpialidocious" * 3,
    "antidisestablishmentarianism pneumonoultramicroscopicsilicovolcanoconiosis",
    "é" * 100 + " " + "é" * 101,
    "x" * 99 + "é",
    "mixed   whitespace\t\t\tand\n\n\nmany     spaces   ",
    "   leading and trailing   ",
    "numbers: 3.14159 1,000,000 1e-10 -42 +7 0x1F 12:30 2021-01-01 50% $100 €20 £5 ¥3",
    "hyphen-ated words, co-operate, state-of-the-art, e.g., i.e., et al.",
    "apostrophes: don't won't it's O'Neill l'homme rock'n'roll",
    "quotes: \"double\" 'single' `back` «guillemets» „low“ “curly” ‘curly’",
    "[CLS] [SEP] [PAD] [UNK] [MASK] ##ing ## # ### special tokens as text",
    "UPPERCASE TEXT WITH NUMBERS 123ABC AND MiXeD CaSe",
    "Ⅰ Ⅱ Ⅲ ⅰ ⅱ ⅲ ⓐ ⓑ Ⓐ Ⓑ 𝐀𝐁𝐂 𝑎𝑏𝑐 𝔸𝔹 ℌ ℑ ℜ",
    "hangul jamo: ᄀ ᅡ ᆨ 가 각 갂 힣 ㄱ ㅏ",
    "\u0130\u0131 \u03a3 \u1e9e \u2126 \u212a \u212b \u00b5 \u00c5",
    "a\u0000b\u0001c\u001fd\u007fe\u0080f\u009fg",
    "tab\u000bvt\u000cff\u001cfs\u001dgs\u001ers\u001fus",
    "x",
    ".",
    "...",
    "?!",
    "\u00ad",
    "\u200b\u200b\u200b",
    "word" + "\u0301" * 30,
    " ".join(["token"] * 300),
    "a " * 600,
    ("The quick brown fox jumps over the lazy dog. " * 40).strip(),
]


def read_sample():
    rng = random.Random(20261125)
    texts = []
    for path in sorted(glob.glob("../shared/datasets/arxiv/*.jsonl.zst")):
        with open(path, "rb") as f:
            data = zstandard.ZstdDecompressor().stream_reader(f).read()
        lines = data.split(b"\n")
        lines = [l for l in lines if l.strip()]
        for i in sorted(rng.sample(range(len(lines)), PAPERS_PER_PART)):
            rec = json.loads(lines[i])
            texts.append(rec["title"])
            texts.append(rec["abstract"])
    return texts


# ---- our rules over libutf8proc, mirrored from src/text/text.c ----------------

UTF8PROC_DECOMPOSE = 1 << 4
CAT_MN, CAT_PC, CAT_PO, CAT_CC, CAT_CF, CAT_CO = 6, 12, 18, 26, 27, 29


def load_utf8proc():
    lib = ctypes.CDLL(ctypes.util.find_library("utf8proc"))
    lib.utf8proc_category.restype = ctypes.c_int
    lib.utf8proc_category.argtypes = [ctypes.c_int32]
    lib.utf8proc_tolower.restype = ctypes.c_int32
    lib.utf8proc_tolower.argtypes = [ctypes.c_int32]
    lib.utf8proc_decompose_char.restype = ctypes.c_ssize_t
    lib.utf8proc_unicode_version.restype = ctypes.c_char_p
    lib.utf8proc_version.restype = ctypes.c_char_p
    return lib


def is_ws(c):
    return (9 <= c <= 13 or c in (0x20, 0x85, 0xA0, 0x1680, 0x2028, 0x2029, 0x202F, 0x205F, 0x3000)
            or 0x2000 <= c <= 0x200A)


def is_cjk(c):
    return any(a <= c <= b for a, b in CJK)


CJK = [(0x4E00, 0x9FFF), (0x3400, 0x4DBF), (0x20000, 0x2A6DF), (0x2A700, 0x2B73F),
       (0x2B740, 0x2B81F), (0x2B920, 0x2CEAF), (0xF900, 0xFAFF), (0x2F800, 0x2FA1F)]


def ours_words(lib, cp):
    """Words of "a" + chr(cp) + "a" by text.c's rules without the compat table."""
    cat = lib.utf8proc_category(cp)
    if cp == 0xFFFD or (cat in (CAT_CC, CAT_CF, CAT_CO) and cp not in (9, 10, 13)):
        out = []
    elif is_ws(cp):
        out = [0x20]
    else:
        buf = (ctypes.c_int32 * 32)()
        last = ctypes.c_int(0)
        m = lib.utf8proc_decompose_char(cp, buf, 32, UTF8PROC_DECOMPOSE, ctypes.byref(last))
        dec = [buf[i] for i in range(m)] if 0 < m <= 32 else [cp]
        dec = [d for d in dec if lib.utf8proc_category(d) != CAT_MN]
        out = []
        for d in dec:
            out += [ord("i"), 0x307] if d == 0x130 else [lib.utf8proc_tolower(d)]
    words, cur = [], "a"
    def flush():
        nonlocal cur
        if cur:
            words.append(cur)
        cur = ""
    iso = is_cjk(cp)
    if iso:
        flush()
    for o in out:
        punct = (o < 128 and chr(o) in PUNCT) or CAT_PC <= lib.utf8proc_category(o) <= CAT_PO
        if is_ws(o):
            flush()
        elif punct:
            flush()
            cur = chr(o)
            flush()
        else:
            cur += chr(o)
    if iso:
        flush()
    cur += "a"
    flush()
    return words


PUNCT = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"


def compat_header(lib, ref):
    """C table of the code points where our rules over utf8proc disagree with
    the reference (ref: cp -> words), each with the reference's treatment."""
    rows = []
    for cp in range(0x80, 0x110000):
        if 0xD800 <= cp <= 0xDFFF:
            continue
        want = ref(cp)
        if ours_words(lib, cp) == want:
            continue
        c = chr(cp)
        if want == ["aa"]:
            kind, repl = "SX_CP_DROP", ""
        elif want == ["a", "a"]:
            kind, repl = "SX_CP_SPACE", ""
        elif len(want) == 1 and want[0][0] == "a" and want[0][-1] == "a":
            kind, repl = "SX_CP_PLAIN", want[0][1:-1]
        elif len(want) == 3 and want[0] == "a" and want[2] == "a":
            kind, repl = "SX_CP_ISO", want[1]
        else:
            raise SystemExit("U+%04X: cannot express %r" % (cp, want))
        assert len(repl) <= 3, (cp, repl)
        if kind in ("SX_CP_PLAIN", "SX_CP_ISO") and repl == c:
            repl = None  # the character itself
        rows.append([cp, cp, kind, repl])
    merged = []
    for r in rows:
        if merged and merged[-1][1] == r[0] - 1 and merged[-1][2] == r[2] and r[3] is None \
                and merged[-1][3] is None:
            merged[-1][1] = r[0]
        else:
            merged.append(r)
    out = io.StringIO()
    out.write("/* generated by scripts/gen-text-fixtures.py from the reference tokenizer and\n"
              " * utf8proc %s (Unicode %s): do not edit. The code points where\n"
              " * utf8proc's Unicode tables would make text.c disagree with the\n"
              " * reference, and the reference's treatment of each (see text.c). */\n"
              % (lib.utf8proc_version().decode(),
                 lib.utf8proc_unicode_version().decode()))
    out.write("static const sx_cp_rule sx_cp_rules[] = {\n")
    for first, last, kind, repl in merged:
        cps = [] if repl is None else [ord(ch) for ch in repl]
        arr = ", ".join("0x%X" % v for v in cps) if cps else "0"
        out.write("    {0x%X, 0x%X, %s, %d, {%s}},\n" % (first, last, kind,
                                                      -1 if repl is None else len(cps), arr))
    out.write("};\n")
    return out.getvalue(), len(rows), len(merged)


def unicode_table(tok):
    norm = tok.backend_tokenizer.normalizer
    pre = tok.backend_tokenizer.pre_tokenizer
    runs = []  # [first, last, class]
    explicit = []
    for cp in range(0x110000):
        if 0xD800 <= cp <= 0xDFFF:
            continue
        c = chr(cp)
        words = [w for w, _ in pre.pre_tokenize_str(norm.normalize_str("a" + c + "a"))]
        if words == ["a" + c + "a"]:
            k = "same"
        elif words == ["aa"]:
            k = "rm"
        elif words == ["a", "a"]:
            k = "sp"
        elif words == ["a", c, "a"]:
            k = "iso"
        else:
            explicit.append((cp, words))
            k = None
        if k is None:
            continue
        if runs and runs[-1][2] == k and runs[-1][1] == cp - 1:
            runs[-1][1] = cp
        elif runs and runs[-1][2] == k and runs[-1][1] == 0xD7FF and cp == 0xE000:
            runs[-1][1] = cp
        else:
            runs.append([cp, cp, k])
    out = io.StringIO()
    out.write("# generated by scripts/gen-text-fixtures.py; see there\n")
    items = [(r[0], "%x %x %s\n" % (r[0], r[1], r[2])) for r in runs]
    for cp, words in explicit:
        enc = "|".join(" ".join("%x" % ord(ch) for ch in w) for w in words)
        items.append((cp, "%x %x = %s\n" % (cp, cp, enc)))
    for _, line in sorted(items):
        out.write(line)
    return out.getvalue()


def main():
    st = SentenceTransformer(MODEL, device="cpu")
    tok = st.tokenizer
    max_len = st.max_seq_length
    assert max_len == 256, max_len
    texts = EDGE + read_sample()
    cctx = zstandard.ZstdCompressor(level=19)
    lines = []
    for t in texts:
        full = tok(t, add_special_tokens=True, truncation=False)["input_ids"]
        feat = st.tokenize([t])
        st_ids = feat["input_ids"][0].tolist()
        rec = {"text": t, "ids": full}
        if "\x00" in t:  # C JSON parsers stop at NUL: give the bytes too
            rec["hex"] = t.encode("utf-8").hex()
        if st_ids != full:
            assert len(full) > max_len and st_ids == full[: max_len - 1] + [full[-1]], t[:80]
            rec["st"] = st_ids
        lines.append(json.dumps(rec, ensure_ascii=False))
    data = ("\n".join(lines) + "\n").encode("utf-8")
    with open(OUT + "tokens.jsonl.zst", "wb") as f:
        f.write(cctx.compress(data))
    with open(OUT + "unicode.txt", "w") as f:
        f.write(unicode_table(tok))
    norm = tok.backend_tokenizer.normalizer
    pre = tok.backend_tokenizer.pre_tokenizer
    def ref(cp):
        return [w for w, _ in pre.pre_tokenize_str(norm.normalize_str("a" + chr(cp) + "a"))]
    lib = load_utf8proc()
    header, n_cp, n_rows = compat_header(lib, ref)
    with open("src/text/unicode_compat.h", "w") as f:
        f.write(header)
    print("compat table: %d code points in %d rows" % (n_cp, n_rows), file=sys.stderr)
    print("%d texts (%d edge), %d bytes raw" % (len(texts), len(EDGE), len(data)), file=sys.stderr)


if __name__ == "__main__":
    main()
