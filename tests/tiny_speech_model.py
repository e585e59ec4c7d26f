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


def _tokenizer(folder: Path) -> WhisperTokenizerFast:
    symbols = pre_tokenizers.ByteLevel.alphabet()
    vocabulary = {symbol: index for index, symbol in enumerate(sorted(symbols))}
    backend = Tokenizer(models.BPE(vocab=vocabulary, merges=[]))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    backend.add_special_tokens(SPECIAL)
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


def build_tiny_whisper(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer = _tokenizer(folder)
    ids = {token: tokenizer.convert_tokens_to_ids(token) for token in SPECIAL}
    torch.manual_seed(0)
    config = WhisperConfig(
        vocab_size=len(tokenizer),
        num_mel_bins=80,
        d_model=32,
        encoder_layers=2,
        encoder_attention_heads=4,
        decoder_layers=2,
        decoder_attention_heads=4,
        encoder_ffn_dim=64,
        decoder_ffn_dim=64,
        max_source_positions=1500,
        max_target_positions=64,
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
        max_length=64,
    )
    generation.save_pretrained(folder)
    WhisperFeatureExtractor(feature_size=80).save_pretrained(folder)
    return folder
