"""Local grounding without a model: OCR, DOM, templates, fields."""
