"""Text from documents: docling extraction, chunking, and the transformer encoder."""
