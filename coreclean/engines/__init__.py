"""Engines that compute beyond one process: :mod:`coreclean.engines.ray_embed` embeds on a Ray cluster,
:mod:`coreclean.engines.ray_blocks` runs the ranking's passes over every row there.

Install with ``pip install "coreclean[ray]"``; everything here imports Ray lazily and says so when it is missing.
"""
