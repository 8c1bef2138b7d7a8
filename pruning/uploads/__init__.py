"""Users' own model files: read safely, and for web uploads only in a sandboxed worker process.

byo.py      load_file_model: judge a file by its bytes, pick its reader, check one forward pass
readers/    one hardened reader per format (.safetensors, .pt2, .keras) and the zip vetting they share
sandbox/    load_upload: a visitor's file is parsed, loaded and run in a resource-limited worker
See docs/security.md for the threat model.
"""
