"""Text from documents: docling extraction, chunking, and the text models (in process or served) behind one
Protocol. Never PostgreSQL."""

import sys

# OpenVINO reports every model conversion to Intel's telemetry service unless `openvino_telemetry` cannot be
# imported (OpenVINO imports it as it loads), when it falls back to its own no-op stub: nothing leaves the
# user's machine. Set before any module of this floor imports OpenVINO.
sys.modules.setdefault("openvino_telemetry", None)
