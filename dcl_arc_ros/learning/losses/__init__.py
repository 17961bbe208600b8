"""Losses: differential NCE (DCL), PatchNCE (CUT), GAN objectives, masked depth losses."""
