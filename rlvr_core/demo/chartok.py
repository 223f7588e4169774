"""A character-level tokenizer for the demo model, saved as a real Hugging Face `tokenizer.json`.

One token per character of the arithmetic task ("0"-"9", "+", "=") plus `<pad>`, `<bos>` and `<eos>`.
It is a `tokenizers` WordLevel model behind a split-every-character pre-tokenizer, wrapped in
transformers' fast-tokenizer class, so `AutoTokenizer.from_pretrained(folder)` loads it like any other.
Encoding with special tokens (the default) prepends `<bos>`, as the model saw in training:
`tokenizer("123+456=")` is the whole prompt.
"""

from __future__ import annotations

PAD, BOS, EOS = "<pad>", "<bos>", "<eos>"
CHARS = "0123456789+="


def build_tokenizer():
    """The demo's tokenizer (a `PreTrainedTokenizerFast`); `save_pretrained(dir)` writes tokenizer.json."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {token: i for i, token in enumerate([PAD, BOS, EOS, *CHARS])}
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token=PAD))
    core.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")
    core.decoder = decoders.Fuse()
    core.post_processor = processors.TemplateProcessing(single=f"{BOS} $A", special_tokens=[(BOS, vocab[BOS])])
    return PreTrainedTokenizerFast(
        tokenizer_object=core, pad_token=PAD, bos_token=BOS, eos_token=EOS, unk_token=PAD, model_max_length=64
    )
