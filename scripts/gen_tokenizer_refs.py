#!/usr/bin/env python3
"""Reference ids for tests/test_tokenizer.c, from Hugging Face `tokenizers` (via transformers' fast tokenizers).

Writes tests/data/tokenizer/refs.json: for every case of the corpus below (written by the project for this test:
mixed case, contractions, numbers, emoji, CJK, combining accents, Arabic, Hebrew, control characters, whitespace
runs, tabs, newlines, very long words, special tokens in the text, invalid UTF-8, pairs that need truncation) the
ids and type ids of
  roberta  RobertaTokenizerFast(vocab_file=roberta-base/vocab.json, merges_file=roberta-base/merges.txt)
  bert     BertTokenizerFast(vocab_file=bert-base-uncased/vocab.txt, do_lower_case=True)
  bert_cased  the same vocab with do_lower_case=False (exercises the cased path)
with `tokenizer(a, b, truncation=bool(max_length), max_length=max_length)`, and the backend's decode of the ids.
Texts are stored as hex of their bytes (invalid UTF-8 included; Python decodes it with errors="replace", the
library's documented policy).

It also trains two tiny tokenizers on the same corpus with `tokenizers` (a byte-level BPE with RobertaProcessing and
a cased WordPiece with a BertNormalizer) and saves their tokenizer.json files, written by `tokenizers` itself, in
tests/data/tokenizer/tiny_bpe/ and tiny_wordpiece/, with their reference ids in refs.json: this tests the
tokenizer.json reader without committing copies of the shared vocabularies.
With --mpnet it writes only tests/data/tokenizer/tiny_mpnet_vocab/: a vocab.txt in all-mpnet-base-v2's layout
(<s> <pad> </s> <unk>, then tiny_wordpiece's WordPiece entries, <mask> last) with a tokenizer_config.json naming
tokenizer_class MPNetTokenizer, and refs.json with the ids and type ids of MPNetTokenizerFast(vocab_file=...) (what
AutoTokenizer gives for such a directory: the fast tokenizer converted from the vocabulary) for every case of the
corpus.
usage: /usr/bin/python3 scripts/gen_tokenizer_refs.py [--shared ../shared] [--mpnet]
"""
import argparse, json, os

S = [
    "Hello world!",
    "The quick brown fox jumps over the lazy dog.",
    "MiXeD CaSe WoRdS and ALLCAPS and lowercase",
    "It's, I'm, you're, we've, they'll, she'd, don't, CAN'T, IT'S, I'M, YOU'RE",
    "'s 't 're 've 'm 'll 'd ''s '''t rock'n'roll",
    "Numbers: 0 1 42 3.14159 1,000,000 2024-05-20 +33 (0)1 23 45 67 89 1e-9 ½ ² ٣ ६",
    "Emoji: 😀😃 👍🏽 👨‍👩‍👧‍👦 🇫🇷 ❤️ 🥲 🫠",
    "CJK: 你好，世界！ 日本語のテキスト カタカナ 한국어 텍스트 漢字",
    "Combining accents: cafe\u0301 nai\u0308ve re\u0301sume\u0301 Ångström ñandú crème brûlée Ṩ",
    "Precomposed: café naïve résumé façade Œuvre Ærø İstanbul ΣΊΣΥΦΟΣ ß ẞ ǅ",
    "Arabic: مرحبا بالعالم، كيف حالك؟ ١٢٣",
    "Hebrew: שָׁלוֹם עוֹלָם ממש",
    "Control\x00chars\x01here\x07and\x1b[0m escape\x7f del \u200b zwsp \u200d zwj \ufeff bom \u00ad shy",
    "Whitespace   runs  \u00a0 nbsp \u3000 ideographic \u2028 line sep \u2003 em  ",
    "Tabs\tand\t\ttabs\nnewlines\n\nand\r\ncrlf",
    "   leading and trailing spaces   ",
    "\t\n ",
    "",
    " ",
    "a",
    "Supercalifragilisticexpialidocious " + "pneumonoultramicroscopicsilicovolcanoconiosis" * 3,
    "x" * 99 + " " + "y" * 100 + " " + "z" * 101 + " " + "é" * 101,
    "Special tokens in text: <s> </s> <pad> <unk> <mask> [CLS] [SEP] [PAD] [UNK] [MASK] [cls] <MASK>",
    "A sentence with a <mask> in it and <mask>at the start, text<mask>glued,   <mask> after spaces",
    "Punctuation!!! ??? ... --- ((brackets)) [sq] {curly} \"quotes\" “smart” ‘single’ « guillemets » — – …",
    "Symbols: $100 €50 £3 ¥7 @user #hashtag 50% a+b=c a^b ~tilde `tick` |pipe| \\back/slash <html>",
    "URLs: https://example.com/path?q=1&r=2#frag user@mail.org",
    "Mixed scripts: Русский текст, Ελληνικά, ภาษาไทย, हिन्दी, తెలుగు",
    "Apostrophes ’curly’ and `grave` and ´acute´",
    "Fullwidth: ＡＢＣ１２３ ｈｅｌｌｏ",
    "Ligatures: ﬁ ﬂ ﬀ and roman numerals Ⅻ ⅻ",
    "Zalgo: Z̴̛͚a̵̪͛l̸͖̓g̶̱̈o̴͇͝",
    "Private use \ue000\uf8ff and unassigned \u0378 and noncharacter \ufdd0 \U0010fffd",
    "Surrogate-free astral: 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 𝟘𝟙𝟚 𐍈",
    "a" * 300,
    "word " * 60,
]
BAD = [b"invalid \xff utf-8 \xc3\x28 here", b"\xe2\x82 truncated", b"\xf0\x9f\x98 cut emoji \xed\xa0\x80 surrogate",
       b"lone continuation \x80\x80 and overlong \xc0\xaf", b"\xf4\x90\x80\x80 beyond U+10FFFF"]
PAIRS = [
    ("How old are you?", "I am six years old.", 0),
    ("The cat sat on the mat.", "The dog didn't.", 10),
    ("one two three four five six seven eight nine ten", "a b", 8),
    ("a b", "one two three four five six seven eight nine ten", 8),
    ("one two three four five six", "seven eight nine ten eleven twelve", 9),
    ("one two three four five six", "seven eight nine ten eleven twelve", 10),
    ("alpha beta gamma delta epsilon zeta eta theta", "iota kappa lambda mu nu xi omicron pi rho sigma", 16),
    ("short", "a much longer second sentence that must be truncated first", 12),
    ("a much longer first sentence that must be truncated first", "short", 12),
    ("x y z", "p q r", 5),
    ("x y z", "p q r", 4),
    ("x y z", "p q r", 3),
    ("Emoji 😀 pair", "CJK 你好 pair with <mask> token", 11),
    ("Tabs\tinside", "and\nnewlines", 0),
    ("", "", 0),
    ("", "only b", 6),
    ("word " * 40, "term " * 40, 64),
]
SINGLE_TRUNC = [("one two three four five six seven eight nine ten", 6), ("a " * 50, 17), ("x", 2), ("x y z", 1)]


def cases():
    out = []
    for s in S:
        out.append({"a": s.encode("utf-8", "surrogatepass"), "b": None, "max_length": 0})
    for b in BAD:
        out.append({"a": b, "b": None, "max_length": 0})
    for a, b, m in PAIRS:
        out.append({"a": a.encode(), "b": b.encode(), "max_length": m})
    for a, m in SINGLE_TRUNC:
        out.append({"a": a.encode(), "b": None, "max_length": m})
    return out


def encode(tok, c):
    a = c["a"].decode("utf-8", "replace")
    b = c["b"].decode("utf-8", "replace") if c["b"] is not None else None
    kw = {"truncation": True, "max_length": c["max_length"]} if c["max_length"] else {}
    enc = tok(a, b, return_token_type_ids=True, **kw) if b is not None else tok(a, return_token_type_ids=True, **kw)
    return {"ids": enc["input_ids"], "type_ids": enc["token_type_ids"]}


def mpnet_vocab(out_dir):
    from transformers import MPNetTokenizerFast
    import transformers
    transformers.logging.set_verbosity_error()
    with open(os.path.join(out_dir, "tiny_wordpiece", "tokenizer.json")) as f:
        wp = json.load(f)["model"]["vocab"]
    words = [w for w, _ in sorted(wp.items(), key=lambda kv: kv[1]) if w not in ("[PAD]", "[CLS]", "[SEP]", "[MASK]")]
    vocab = ["<s>", "<pad>", "</s>", "<unk>"] + words + ["<mask>"]
    d = os.path.join(out_dir, "tiny_mpnet_vocab")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "vocab.txt"), "w", encoding="utf-8") as f:
        f.write("".join(w + "\n" for w in vocab))
    cfg = {"do_lower_case": True, "bos_token": "<s>", "eos_token": "</s>", "sep_token": "</s>", "cls_token": "<s>",
           "unk_token": "[UNK]", "pad_token": "<pad>", "mask_token": "<mask>", "tokenize_chinese_chars": True,
           "strip_accents": None, "tokenizer_class": "MPNetTokenizer"}
    with open(os.path.join(d, "tokenizer_config.json"), "w") as f:
        json.dump(cfg, f, indent=1)
        f.write("\n")
    tok = MPNetTokenizerFast(vocab_file=os.path.join(d, "vocab.txt"), do_lower_case=True)
    out = []
    for c in cases():
        out.append({"a_hex": c["a"].hex(), "b_hex": c["b"].hex() if c["b"] is not None else None,
                    "max_length": c["max_length"], "mpnet": encode(tok, c)})
    with open(os.path.join(d, "refs.json"), "w") as f:
        json.dump({"generator": "scripts/gen_tokenizer_refs.py --mpnet", "transformers": transformers.__version__,
                   "cases": out}, f, ensure_ascii=True, indent=None, separators=(",", ":"))
        f.write("\n")
    print(f"{len(out)} cases -> {d}/refs.json")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shared", default="../shared")
    ap.add_argument("--out", default="tests/data/tokenizer")
    ap.add_argument("--mpnet", action="store_true", help="write only tiny_mpnet_vocab/ (see above)")
    args = ap.parse_args()
    if args.mpnet:
        return mpnet_vocab(args.out)
    import tokenizers
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors, decoders, trainers
    from transformers import BertTokenizerFast, RobertaTokenizerFast, PreTrainedTokenizerFast
    import transformers
    transformers.logging.set_verbosity_error()
    td = os.path.join(args.shared, "data", "tokenizers")
    toks = {
        "roberta": RobertaTokenizerFast(vocab_file=os.path.join(td, "roberta-base", "vocab.json"),
                                        merges_file=os.path.join(td, "roberta-base", "merges.txt")),
        "bert": BertTokenizerFast(vocab_file=os.path.join(td, "bert-base-uncased", "vocab.txt"), do_lower_case=True),
        "bert_cased": BertTokenizerFast(vocab_file=os.path.join(td, "bert-base-uncased", "vocab.txt"),
                                        do_lower_case=False),
    }
    # tiny tokenizers trained by `tokenizers` on the corpus (their tokenizer.json files are written by it)
    corpus = S + [a for a, _, _ in PAIRS] + [b for _, b, _ in PAIRS]
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    bpe.train_from_iterator(corpus, trainers.BpeTrainer(vocab_size=400, special_tokens=["<s>", "<pad>", "</s>",
                                                                                          "<unk>", "<mask>"],
                                                        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    bpe.post_processor = processors.RobertaProcessing(("</s>", bpe.token_to_id("</s>")),
                                                      ("<s>", bpe.token_to_id("<s>")))
    wp = Tokenizer(models.WordPiece(unk_token="[UNK]", max_input_chars_per_word=20))
    wp.normalizer = normalizers.BertNormalizer(lowercase=False, strip_accents=True)
    wp.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    wp.decoder = decoders.WordPiece()
    wp.train_from_iterator(corpus, trainers.WordPieceTrainer(vocab_size=300, special_tokens=["[PAD]", "[UNK]",
                                                                                             "[CLS]", "[SEP]",
                                                                                             "[MASK]"]))
    wp.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", wp.token_to_id("[CLS]")), ("[SEP]", wp.token_to_id("[SEP]"))])
    for name, t in (("tiny_bpe", bpe), ("tiny_wordpiece", wp)):
        os.makedirs(os.path.join(args.out, name), exist_ok=True)
        t.save(os.path.join(args.out, name, "tokenizer.json"))
        toks[name] = PreTrainedTokenizerFast(tokenizer_file=os.path.join(args.out, name, "tokenizer.json"))
    out = []
    for c in cases():
        row = {"a_hex": c["a"].hex(), "b_hex": c["b"].hex() if c["b"] is not None else None,
               "max_length": c["max_length"]}
        for name, tok in toks.items():
            e = encode(tok, c)
            e["decode"] = tok.backend_tokenizer.decode(e["ids"], skip_special_tokens=False)
            e["decode_skip"] = tok.backend_tokenizer.decode(e["ids"], skip_special_tokens=True)
            row[name] = e
        out.append(row)
    meta = {"generator": "scripts/gen_tokenizer_refs.py", "tokenizers": tokenizers.__version__,
            "transformers": transformers.__version__, "cases": out}
    with open(os.path.join(args.out, "refs.json"), "w") as f:
        json.dump(meta, f, ensure_ascii=True, indent=None, separators=(",", ":"))
        f.write("\n")
    print(f"{len(out)} cases -> {args.out}/refs.json")


if __name__ == "__main__":
    main()
