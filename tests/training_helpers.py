"""Keras callbacks that tests pass to `vae_keras.training.train`, in-process and in subprocess scripts
(tests/ is on their PYTHONPATH)."""

import keras


class InterruptAtEpoch(keras.callbacks.Callback):
    """Ctrl-C at the start of an epoch (the checkpoint then holds the epochs before it)."""

    def __init__(self, epoch):
        super().__init__()
        self.epoch = epoch

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == self.epoch:
            raise KeyboardInterrupt
