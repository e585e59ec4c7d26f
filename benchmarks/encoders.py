"""Encoder throughput against its limit, on whatever device is here.

For each text model: the project's encoder (chunks/s), sentence-transformers' `encode` at batch 32 and 256,
and the runtime's forward pass alone on batches already on the device (the limit: no tokenizing, padding or
copying), with project / limit. On CPU each text model runs twice: in torch and in OpenVINO (the default
there), each against its own runtime's limit. Texts are real Python documentation paragraphs when Debian's
python3.11-doc is installed, else generated sentences of the same length (~180 tokens). Models:

- all-MiniLM-L6-v2 (the bundled one);
- a BERT-large-sized model with random weights (24 layers, 1024 wide), built from config here, no download;
  on CPU (the default there) a 4-layer one, so the run stays short;
- ColQwen2 at Qwen2-VL-2B size with random weights (pages/s over A4 pages of text, up to 768 visual tokens
  each); on CPU the tiny one of the tests (16 tokens a page). Sentence-transformers has no such model.
- CLIP with random weights, ViT-L/14 size (ViT-B/32 on CPU): pictures/s over 640x480 drawings, against the
  plain transformers loop (processor, then `get_image_features`, a batch at a time) and the forward pass alone.
- Whisper with random weights, large-v3-turbo size (base on CPU): audio seconds transcribed per second,
  against the plain transformers loop (the `automatic-speech-recognition` pipeline over the decoded recording,
  30-second chunks, timestamps) and `generate` alone on features already computed (the limit). Random weights
  decode until the length limit, so the rates are the slowest a real model would show.

    .venv/bin/python benchmarks/encoders.py            # CPU: short form
    .venv/bin/python benchmarks/encoders.py --full     # GPU: full sizes, 21,864 chunks
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))  # the random ColQwen2 builder
from tiny_picture_model import CLIP_VIT_B32, CLIP_VIT_L14, build_tiny_clip  # noqa: E402
from tiny_speech_model import WHISPER_BASE, WHISPER_LARGE_V3_TURBO, build_tiny_whisper  # noqa: E402
from tiny_visual_model import QWEN2_VL_2B, build_tiny_colqwen2  # noqa: E402

DOCS = Path("/usr/share/doc/python3.11/html")
ENCODERS = ("text", "pages", "pictures", "speech")


def texts(count: int) -> list[str]:
    """Paragraphs of the Python docs (about 180 tokens each), or sentences of that length."""
    found: list[str] = []
    for page in sorted(DOCS.rglob("*.html")) if DOCS.exists() else []:
        text = re.sub(r"<[^>]+>", " ", page.read_text(errors="replace"))
        words = text.split()
        found += [" ".join(words[i : i + 140]) for i in range(0, len(words) - 140, 140)]
        if len(found) >= count:
            return found[:count]
    while len(found) < count:
        n = len(found)
        found.append(" ".join(f"hive{n % 97} frame{i} brood honey" for i in range(35)))
    return found


def random_bert(folder: Path, layers: int, hidden: int) -> Path:
    """A BERT of this size with random weights and the bundled model's tokenizer (size sets the cost)."""
    from transformers import AutoTokenizer, BertConfig, BertModel

    from embed_pipelines.text.local_model import bundled_model_folder

    config = BertConfig(
        vocab_size=30522,
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=hidden // 64,
        intermediate_size=hidden * 4,
        max_position_embeddings=512,
    )
    torch.manual_seed(0)
    BertModel(config).save_pretrained(folder)
    AutoTokenizer.from_pretrained(bundled_model_folder()).save_pretrained(folder)
    (folder / "modules.json").write_text(
        '[{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},'
        ' {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"}]'
    )
    (folder / "1_Pooling").mkdir(exist_ok=True)
    (folder / "1_Pooling/config.json").write_text(
        f'{{"word_embedding_dimension": {hidden}, "pooling_mode_mean_tokens": true}}'
    )
    (folder / "sentence_bert_config.json").write_text('{"max_seq_length": 256, "do_lower_case": false}')
    return folder


def rate(work, count: int) -> float:
    """Items per second of work(count), after a warm-up on a few items (allocations, kernels)."""
    work(min(count, 8))
    started = time.perf_counter()
    work(count)
    return count / (time.perf_counter() - started)


def measure(name: str, folder: Path, corpus: list[str], device: str, backend: str = "auto") -> dict:
    from sentence_transformers import SentenceTransformer

    from embed_pipelines.text.local_model import TextEmbeddingModel

    encoder = TextEmbeddingModel(model=str(folder), device=device, backend=backend).encoder()
    project = rate(lambda n: encoder.encode(corpus[:n]), len(corpus))
    st = SentenceTransformer(str(folder), device=device, model_kwargs={"torch_dtype": encoder.dtype})
    st32 = rate(lambda n: st.encode(corpus[:n], batch_size=32), len(corpus))
    st256 = rate(lambda n: st.encode(corpus[:n], batch_size=256), len(corpus))
    limit = forward_limit(encoder, corpus)
    runtime = type(encoder.runtime).__name__.removesuffix("Runtime").lower()
    return {
        "model": f"{name} [{runtime}]",
        "project": project,
        "st 32": st32,
        "st 256": st256,
        "limit": limit,
        "ratio": project / limit,
    }


def a4_pages(count: int, corpus: list[str]):
    """A4 pages at 72 DPI with a paragraph of text each (the processor's cost depends on pixels, not content)."""
    from PIL import Image, ImageDraw

    pages = []
    for i in range(count):
        page = Image.new("RGB", (595, 842), "white")
        words = corpus[i % len(corpus)].split()
        for line in range(0, min(len(words), 400), 8):
            ImageDraw.Draw(page).text((40, 40 + 2 * line), " ".join(words[line : line + 8]), fill="black")
        pages.append(page)
    return pages


def measure_pages(folder: Path, pages: list, device: str) -> dict:
    """The project's visual encoder against the forward pass alone on batches processed and moved first."""
    from embed_pipelines.visual.model import VisualEmbeddingModel

    encoder = VisualEmbeddingModel(model=str(folder), family="colqwen2", device=device).encoder()
    project = rate(lambda n: encoder.embed_pages(pages[:n]), len(pages))
    step = encoder.batch_size
    batches = [
        encoder.processor.process_images(pages[i : i + step]).to(encoder.device) for i in range(0, len(pages), step)
    ]

    @torch.inference_mode()
    def run(n: int) -> None:
        for batch in batches[: -(-n // step)]:  # the batches that hold n pages
            encoder.model(**batch).sum()
        if encoder.device.type == "cuda":
            torch.cuda.synchronize()

    limit = rate(run, len(pages))
    return {"model": "ColQwen2 (random), pages", "project": project, "limit": limit, "ratio": project / limit}


def drawings(count: int) -> list:
    """640x480 pictures of their own (the processor's cost depends on pixels, not content)."""
    from PIL import Image, ImageDraw

    pictures = []
    for i in range(count):
        picture = Image.new("RGB", (640, 480), ((i * 67) % 256, (i * 131) % 256, 90))
        ImageDraw.Draw(picture).ellipse((40 + i % 200, 60, 400 + i % 200, 420), fill=(255 - i % 256, 40, 200))
        pictures.append(picture)
    return pictures


def measure_pictures(folder: Path, pictures: list, device: str) -> dict:
    """The project's picture encoder against the plain loop and the forward pass on batches processed first."""
    from embed_pipelines.visual.picture_model import PictureEmbeddingModel

    encoder = PictureEmbeddingModel(model=str(folder), device=device).encoder()
    project = rate(lambda n: encoder.embed_pictures(pictures[:n]), len(pictures))
    step, model, processor = encoder.batch_size, encoder.model, encoder.processor

    @torch.inference_mode()
    def plain(n: int) -> None:
        for start in range(0, n, step):
            inputs = processor(images=pictures[start : min(n, start + step)], return_tensors="pt").to(model.device)
            model.get_image_features(pixel_values=inputs["pixel_values"].to(model.dtype)).pooler_output.cpu()

    batches = [
        processor(images=pictures[i : i + step], return_tensors="pt")["pixel_values"].to(model.device, model.dtype)
        for i in range(0, len(pictures), step)
    ]

    @torch.inference_mode()
    def forward(n: int) -> None:
        for batch in batches[: -(-n // step)]:
            model.get_image_features(pixel_values=batch).pooler_output.sum()
        if encoder.device.type == "cuda":
            torch.cuda.synchronize()

    plain_rate, limit = rate(plain, len(pictures)), rate(forward, len(pictures))
    return {"model": "CLIP (random), pictures", "project": project, "plain": plain_rate, "limit": limit,
            "ratio": project / limit}  # fmt: skip


def recording(path: Path, seconds: int) -> Path:
    """A recording of a tone sounding half of each second, as FLAC."""
    import av
    import numpy as np

    t = np.arange(seconds * 16_000) / 16_000
    samples = (0.3 * np.sin(2 * np.pi * 220 * t) * (np.sin(2 * np.pi * t) > 0)).astype(np.float32)
    frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="flt", layout="mono")
    frame.sample_rate = 16_000
    with av.open(str(path), "w") as container:
        stream = container.add_stream("flac", rate=16_000)
        stream.layout = "mono"
        resampler = av.AudioResampler(format=stream.codec_context.format, layout="mono", rate=16_000)
        for converted in [*resampler.resample(frame), *resampler.resample(None)]:
            container.mux(stream.encode(converted))
        container.mux(stream.encode(None))
    return path


def measure_speech(folder: Path, audio: Path, seconds: int, device: str) -> dict:
    """Audio seconds per second: the project's transcription against the pipeline a user would call and
    `generate` alone on the project's own windows' features (each measured once: a run is minutes on CPU)."""
    import numpy as np
    from transformers import pipeline

    from embed_pipelines.audio.decoding import decoded_blocks, windows
    from embed_pipelines.audio.speech_model import WINDOW_S, SpeechModel
    from embed_pipelines.core.batches import batched

    speech = SpeechModel(model=str(folder), device=device, language="en")
    transcriber = speech.transcriber()

    def timed(work) -> float:
        started = time.perf_counter()
        work()
        return seconds / (time.perf_counter() - started)

    batches = batched(windows(decoded_blocks(audio), WINDOW_S), transcriber.batch_size)
    features = [transcriber._features(batch) for batch in batches]
    transcriber._generate(features[0], "en")  # warm: the first call allocates what the others reuse
    project = timed(lambda: list(speech.transcribe(audio)))
    asr = pipeline("automatic-speech-recognition", model=transcriber.model, tokenizer=transcriber.processor.tokenizer,
                   feature_extractor=transcriber.processor.feature_extractor, chunk_length_s=30,
                   batch_size=transcriber.batch_size)  # fmt: skip
    language = {"language": "en", "task": "transcribe"}
    plain = timed(lambda: asr(np.concatenate(list(decoded_blocks(audio))), return_timestamps=True,
                              generate_kwargs=language))  # fmt: skip
    limit = timed(lambda: [transcriber._generate(batch, "en") for batch in features])
    return {"model": "Whisper (random), audio s", "project": project, "plain": plain, "limit": limit,
            "ratio": project / limit}  # fmt: skip


def forward_limit(encoder, corpus: list[str]) -> float:
    """Chunks/s of the runtime's forward pass alone (pooling included), on the project's own batches already
    tokenized, padded and on the device."""
    from embed_pipelines.text.encoder import TokenBatch, token_budget_batches

    runtime = encoder.runtime
    ids = [encoding.ids for encoding in encoder._rust.encode_batch(corpus)]
    batches = []
    for rows in token_budget_batches([len(i) for i in ids], encoder.token_budget, encoder.max_batch):
        batch = runtime.prepare(encoder._padded(ids, rows))
        if hasattr(runtime, "device"):  # torch: moved before the clock starts
            batch = TokenBatch(batch.ids.to(runtime.device), batch.mask.to(runtime.device))
        batches.append(batch)

    def run(n: int) -> None:
        runtime.gather([runtime.run(batch) for batch in (batches if n > 1 else batches[:1])])

    run(1)
    started = time.perf_counter()
    run(len(corpus))
    return len(corpus) / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--full", action="store_true", help="full sizes (for a GPU)")
    parser.add_argument("--chunks", type=int, default=None)
    parser.add_argument("--only", action="append", choices=ENCODERS, help="these encoders only (repeatable)")
    args = parser.parse_args()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    full = args.full or device == "cuda"
    corpus = texts(args.chunks or (21_864 if full else 512))
    from embed_pipelines.text.local_model import bundled_model_folder

    only = set(args.only or ENCODERS)
    with tempfile.TemporaryDirectory(prefix="embed-encoders-") as tmp:
        results = []
        if "text" in only:
            layers, hidden = (24, 1024) if full else (4, 1024)
            large = random_bert(Path(tmp) / "bert-large", layers, hidden)
            backends = ["auto"] if device == "cuda" else ["torch", "openvino"]
            models = [("all-MiniLM-L6-v2", bundled_model_folder()), (f"BERT {layers}x{hidden}", large)]
            results += [
                measure(name, folder, corpus, device, backend) for name, folder in models for backend in backends
            ]
        if "pages" in only:
            colqwen2 = build_tiny_colqwen2(Path(tmp) / "colqwen2", sizes=QWEN2_VL_2B if full else None)
            results.append(measure_pages(colqwen2, a4_pages(96 if full else 32, corpus), device))
        if "pictures" in only:
            clip = build_tiny_clip(Path(tmp) / "clip", CLIP_VIT_L14 if full else CLIP_VIT_B32)
            results.append(measure_pictures(clip, drawings(2048 if full else 64), device))
        if "speech" in only:
            whisper = build_tiny_whisper(Path(tmp) / "whisper", WHISPER_LARGE_V3_TURBO if full else WHISPER_BASE)
            seconds = 1200 if full else 120
            results.append(measure_speech(whisper, recording(Path(tmp) / "talk.flac", seconds), seconds, device))
    print(f"device {device}; {len(corpus)} chunks; chunks/s (pages/s, pictures/s, audio seconds/s)")
    names = ("project", "st 32", "st 256", "plain", "limit")
    print(f"{'model':32}" + "".join(f"{name:>10}" for name in names) + f"{'project/limit':>15}")
    for r in results:
        rates = "".join(f"{r[name]:10.1f}" if name in r else f"{'-':>10}" for name in names)
        print(f"{r['model']:32}{rates}{r['ratio']:15.2f}")


if __name__ == "__main__":
    main()
