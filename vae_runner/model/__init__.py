"""The model by composition: `VAE(encoder, decoder, prior, likelihood)`, each a small module of its own file."""
