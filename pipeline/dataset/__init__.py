"""Training data: preprocessing sources into Parquet clips and frames, and the SIS index."""
