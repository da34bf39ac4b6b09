"""TFRecord schema, image/caption preprocessing and tf.data input pipelines."""
