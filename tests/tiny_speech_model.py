"""A tiny random-weight Whisper checkpoint built from its config, loadable by path like a real one: no hub
access. Its tokenizer is made here too (Whisper's own cannot be downloaded): byte-level BPE over the 256 byte
symbols without merges, then Whisper's special tokens in Whisper's order (end of text, start of transcript,
two languages, the tasks, no-timestamps) and the 1,501 timestamp tokens <|0.00|> ... <|30.00|>, so that
`generate(return_timestamps=True)` decodes real segments. Weights are random (seeded): the words are noise, but
the timestamps follow Whisper's rules (its logits processor enforces them), which is what the pipeline reads."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers
from transformers import (
    GenerationConfig,
    WhisperConfig,
    WhisperFeatureExtractor,
    WhisperForConditionalGeneration,
    WhisperTokenizerFast,
)

LANGUAGES = ("<|en|>", "<|de|>")
SPECIAL = ["<|endoftext|>", "<|startoftranscript|>", *LANGUAGES, "<|translate|>", "<|transcribe|>",
           "<|startoflm|>", "<|startofprev|>", "<|nospeech|>", "<|notimestamps|>"]  # fmt: skip
TIMESTAMPS = [f"<|{step * 0.02:.2f}|>" for step in range(1501)]
WHISPER_TEXT_TOKENS = 50257  # a real Whisper's vocabulary before its special tokens (its output layer's size)
# Real sizes, for throughput (benchmarks/encoders.py): the vocabulary padded to Whisper's, 99 languages.
WHISPER_BASE = dict(
    d_model=512,
    encoder_layers=6,
    decoder_layers=6,
    encoder_attention_heads=8,
    decoder_attention_heads=8,
    encoder_ffn_dim=2048,
    decoder_ffn_dim=2048,
    max_target_positions=448,
)
WHISPER_LARGE_V3_TURBO = dict(d_model=1280, encoder_layers=32, decoder_layers=4, encoder_attention_heads=20,
                              decoder_attention_heads=20, encoder_ffn_dim=5120, decoder_ffn_dim=5120,
                              max_target_positions=448, num_mel_bins=128)  # fmt: skip
TINY = dict(d_model=32, encoder_layers=2, decoder_layers=2, encoder_attention_heads=4, decoder_attention_heads=4,
            encoder_ffn_dim=64, decoder_ffn_dim=64, max_target_positions=64)  # fmt: skip


def _tokenizer(folder: Path, real_size: bool) -> WhisperTokenizerFast:
    symbols = sorted(pre_tokenizers.ByteLevel.alphabet())
    if real_size:  # tokens no text maps to, so the output layer has a real Whisper's size
        symbols += [f"<unused{index}>" for index in range(WHISPER_TEXT_TOKENS - len(symbols))]
    vocabulary = {symbol: index for index, symbol in enumerate(symbols)}
    backend = Tokenizer(models.BPE(vocab=vocabulary, merges=[]))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    languages = [f"<|l{index}|>" for index in range(97)] if real_size else []
    backend.add_special_tokens(SPECIAL + languages)
    backend.add_tokens(TIMESTAMPS)
    backend.save(str(folder / "tokenizer.json"))
    (folder / "vocab.json").write_text(json.dumps(vocabulary))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    tokenizer = WhisperTokenizerFast(
        vocab_file=str(folder / "vocab.json"),
        merges_file=str(folder / "merges.txt"),
        tokenizer_file=str(folder / "tokenizer.json"),
        unk_token="<|endoftext|>",
        bos_token="<|endoftext|>",
        eos_token="<|endoftext|>",
        pad_token="<|endoftext|>",
    )
    tokenizer.save_pretrained(folder)
    return tokenizer


def build_tiny_whisper(folder: Path, sizes: dict | None = None) -> Path:
    """The tiny model of the tests, or (`sizes`: WHISPER_BASE ...) one of a real Whisper's size."""
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer = _tokenizer(folder, real_size=sizes is not None)
    sizes = {"num_mel_bins": 80, **(sizes or TINY)}
    ids = {token: tokenizer.convert_tokens_to_ids(token) for token in SPECIAL}
    torch.manual_seed(0)
    config = WhisperConfig(
        vocab_size=len(tokenizer),
        **sizes,
        max_source_positions=1500,
        pad_token_id=ids["<|endoftext|>"],
        bos_token_id=ids["<|endoftext|>"],
        eos_token_id=ids["<|endoftext|>"],
        decoder_start_token_id=ids["<|startoftranscript|>"],
        begin_suppress_tokens=[ids["<|endoftext|>"]],
    )
    WhisperForConditionalGeneration(config).save_pretrained(folder)
    generation = GenerationConfig(
        decoder_start_token_id=ids["<|startoftranscript|>"],
        eos_token_id=ids["<|endoftext|>"],
        pad_token_id=ids["<|endoftext|>"],
        bos_token_id=ids["<|endoftext|>"],
        no_timestamps_token_id=ids["<|notimestamps|>"],
        prev_sot_token_id=ids["<|startofprev|>"],
        lang_to_id={language: ids[language] for language in LANGUAGES},
        task_to_id={"transcribe": ids["<|transcribe|>"], "translate": ids["<|translate|>"]},
        is_multilingual=True,
        max_initial_timestamp_index=50,
        begin_suppress_tokens=[ids["<|endoftext|>"]],
        suppress_tokens=[],
        max_length=sizes["max_target_positions"],
    )
    generation.save_pretrained(folder)
    WhisperFeatureExtractor(feature_size=sizes["num_mel_bins"]).save_pretrained(folder)
    return folder
