"""Step 1 of the data's way: images in, one cached vector per image out (manifest, decoding, backbones, the embed loop, the cache)."""
