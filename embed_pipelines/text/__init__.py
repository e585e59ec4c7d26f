"""Text from documents: docling extraction, chunking, and the text models (in process or served) behind one
Protocol. Never PostgreSQL."""
