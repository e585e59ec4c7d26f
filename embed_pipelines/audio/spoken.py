"""The audio family's model: a speech model that transcribes recordings, and the collection's text model that
embeds the transcripts and the questions. To the text steps (chunk budget, embedding, search) it is the text
model; its versions add the speech model's, so a new speech model or language builds a new index version."""

from __future__ import annotations

from typing import Any

from embed_pipelines.audio.speech_model import SpeechModel
from embed_pipelines.core.fingerprints import Versions, index_version
from embed_pipelines.text.model import TextModel


class SpokenTextModel:
    def __init__(self, speech: SpeechModel, text: TextModel):
        self.speech, self.text = speech, text

    def __getattr__(self, name: str) -> Any:
        """Whatever else the text steps ask (dimension, embed_documents, usage, verify_*), the text model answers."""
        return getattr(self.text, name)

    def versions(self) -> Versions:
        speech = self.speech.version()
        return Versions(
            index_version({"text": self.text.index_version(), "speech": speech}),
            index_version({"chunker": self.text.chunker_version(), "speech": speech}),
        )

    def index_version(self) -> str:
        return self.versions().index

    def chunker_version(self) -> str:
        return self.versions().chunker

    def query_settings(self) -> dict:
        """What the registry keeps: the text model's query settings (search embeds questions with them), and the
        speech model that made the transcripts."""
        return {"speech": self.speech.model_dump(), "text": self.text.query_settings()}

    def model_dump(self, **options) -> dict:
        return {"speech": self.speech.model_dump(**options), "text": self.text.model_dump(**options)}

    def warm(self) -> None:
        self.speech.warm()
        self.text.warm()
