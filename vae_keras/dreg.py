"""The doubly reparameterized gradient (DReG, Tucker et al. 2019) of the importance-weighted bound.

With log w_k = log p(x|z_k) + c * (log p(z_k) - log q(z_k|x)), z_k = mu + sigma * eps_k (c is the KL
weight w_t; 1 for Burda et al.'s bound) and normalised weights w~_k = softmax_k(log w_k), the plain
gradient of the loss L = -(logsumexp_k log w_k - log K) with respect to the encoder's parameters phi is

    dL/dphi = -sum_k w~_k (d log w_k/dz_k dz_k/dphi - c * d log q(z_k|x)/dphi|_z),

whose score-function term (the last one) has expectation zero but a large variance. Tucker et al.'s
identity E[w~_k d log q/dphi] = E[d w~_k/dz_k dz_k/dphi], with d w~_k/dz_k = w~_k (1 - w~_k)
d log w_k/dz_k (phi held fixed in w~), turns it into a reparameterized term:

    dL/dphi = -sum_k w~_k ((1 - c) + c * w~_k) d log w_k/dz_k dz_k/dphi,

which is sum_k w~_k^2 (...) at c = 1 (their equation for IWAE-DReG). The model computes it in one
pass: log q(z_k|x) is evaluated with the encoder's (mean, log_var) held fixed (stop_gradient) while
z_k stays reparameterized, and z_k reaches every term through `GradientScale`, an identity whose
gradient multiplies the incoming one by stop_gradient((1 - c) + c * w~_k). The incoming gradient is
already -w~_k d log w_k/dz_k, so the encoder gets the DReG gradient; the decoder's (and a learned
prior's) parameters are not behind z_k and keep the plain IWAE gradient -sum_k w~_k d log w_k/dtheta.
The loss value is the IWAE bound unchanged.
"""

from keras import ops

IWAE_GRADIENTS = ("plain", "dreg")


class GradientScale:
    """An identity on z [K, B, D] whose gradient is multiplied by ``factor`` [K, B].

    The factor depends on the log-weights, which depend on z: it is set with `set_factor` after
    they are computed, and read when the gradient is taken (the same step, the same graph).
    """

    def __init__(self):
        self.factor = None

    def __call__(self, z):
        import tensorflow as tf  # custom gradients are TensorFlow's (the training step is TensorFlow-specific)

        @tf.custom_gradient
        def identity(t):
            def grad(upstream):
                if self.factor is None:
                    raise RuntimeError("GradientScale: set_factor was not called before the gradient was taken")
                return upstream * ops.cast(self.factor, upstream.dtype)[..., None]

            return tf.identity(t), grad

        return identity(z)

    def set_factor(self, log_w, kl_weight):
        """Sets the factor (1 - c) + c * w~_k from the log-weights [K, B] and the KL weight c."""
        normalized = ops.softmax(ops.stop_gradient(log_w), axis=0)
        c = ops.stop_gradient(ops.cast(kl_weight, "float32"))
        self.factor = ops.stop_gradient((1.0 - c) + c * normalized)


def log_q_of_z(z, eps, z_log_var):
    """log q(z|x) [K, B] as a function of z alone, the encoder's (mean, log_var) held fixed.

    Its value is exactly the noise form `diag_normal_log_prob_of_noise(eps, log_var)` (eps
    reconstructed as eps + (z - stop(z)) / sigma, which adds an exact 0), and its gradient with respect
    to z is -(z - mean) / sigma^2, with no path to the encoder's outputs.
    """
    from vae_keras.gaussian import diag_normal_log_prob_of_noise

    log_var = ops.stop_gradient(z_log_var)
    eps_of_z = eps + (z - ops.stop_gradient(z)) * ops.exp(-0.5 * log_var)
    return diag_normal_log_prob_of_noise(eps_of_z, log_var)
