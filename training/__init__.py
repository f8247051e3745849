"""Model training: TFRS models as plain Keras libraries, distributed by Horovod at the edge."""
