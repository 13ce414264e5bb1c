"""Models built with tinygrad_tf.nn."""
