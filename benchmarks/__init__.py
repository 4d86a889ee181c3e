"""Side-by-side benchmarks of vae_keras against classic VAE baselines; see benchmarks/README.md.

Kept free of imports so that ``python -m benchmarks.serving`` runs without loading vae_keras.
"""
