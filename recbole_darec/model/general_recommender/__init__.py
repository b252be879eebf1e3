"""One module per plugin model, named after the lower-cased model name (RecBole convention)."""
