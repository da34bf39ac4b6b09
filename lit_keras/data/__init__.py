"""Data: the TFRecord schema, image/caption preprocessing, tf.data input pipelines, writing
TFRecords from manifests (`records`), validating them, and pre-computed image embeddings."""
