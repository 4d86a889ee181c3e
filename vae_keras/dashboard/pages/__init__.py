"""The dashboard's pages, one module each: ``TITLE`` (the tab's name, also its ``?page=`` value) and
``render(sel, listed)`` (draws the page for the shown model; ``listed`` holds every loadable model).

A new page is one module here and one line in ``PAGES``.
"""

from vae_keras.dashboard.pages import compare, factors, latent, losses, overview, reconstructions, samples

PAGES = (overview, reconstructions, samples, losses, latent, factors, compare)  # tab order
