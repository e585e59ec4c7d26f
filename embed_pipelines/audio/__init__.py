"""Speech: audio files decoded a window at a time and transcribed by a Whisper-family model into timed
segments, which the audio family chunks and embeds as text."""
